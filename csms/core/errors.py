"""Errors the CSMS raises on purpose.

::

    CsmsError
    ├── ConfigurationError        bad settings: one line on stderr, exit 2
    ├── StorageError              the database failed us (our side)
    │   ├── StorageUnavailableError   cannot reach it at all
    │   └── ConflictError             a conditional write found the row changed
    ├── NotFoundError             get_x() of something that does not exist
    └── InvalidRequestError       an operator's request cannot be carried out as asked

A business "no" (a blocked token, a rejected boot) is a value, not one of
these.
"""

from __future__ import annotations


class CsmsError(Exception):
    """Base of every error the CSMS raises on purpose."""


class ConfigurationError(CsmsError):
    """The configuration cannot work; the message names the setting."""


class StorageError(CsmsError):
    """A database operation failed."""


class StorageUnavailableError(StorageError):
    """The database does not answer."""


class ConflictError(StorageError):
    """A write conditional on a row's state found it changed meanwhile (a lost race)."""


class NotFoundError(CsmsError):
    """A looked-up entity does not exist."""


class InvalidRequestError(CsmsError):
    """An operator's request (a command's fields) cannot be carried out as asked;
    the message says which field and why."""
