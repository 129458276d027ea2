"""Fixtures every test directory may use: a database of each kind, and a Storage on it.

- ``sqlite_url``: a SQLite file in the test's ``tmp_path``.
- ``postgres_url``: a brand-new database ``csms_test_<hex>`` on the server
  named by ``CSMS_TEST_DATABASE_URL`` (default: the local server), dropped
  afterwards. An unreachable server skips the test, or fails it under
  ``CI=true`` (a missing service must not pass silently there).
- ``database_url``: each of the above in turn (test ids ``sqlite`` and
  ``postgres``); depend on it to run a test against both adapters.
- ``storage``: an opened, migrated ``Storage`` on ``database_url``, closed afterwards.
- ``any_storage``: a fresh ``Storage`` of each kind in turn, the in-memory one
  (``MemoryStorage``, test id ``memory``) too; a module that holds a store to
  the storage contract overrides ``storage`` with it.
- ``amqp_url``: the RabbitMQ named by ``CSMS_TEST_AMQP_URL`` (default: the
  local broker), checked reachable; skipped (failed under ``CI=true``) if not.
  Tests isolate themselves with their own exchange and queue names.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import aio_pika
import aiormq.exceptions
import asyncpg
import pytest

from csms.adapters.storage import mask_password, open_storage
from csms.adapters.storage.memory import MemoryStorage
from csms.core.ports import Storage

DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_TEST_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def postgres_server_url() -> str:
    """The PostgreSQL server that tests create their databases on."""
    return os.environ.get("CSMS_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)


def amqp_server_url() -> str:
    """The RabbitMQ that event tests publish to and consume from."""
    return os.environ.get("CSMS_TEST_AMQP_URL", DEFAULT_TEST_AMQP_URL)


def service_missing(reason: str) -> NoReturn:
    """Skip the test, or fail it when running under CI."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file in the test's temporary directory (absolute form)."""
    return f"sqlite:///{tmp_path / 'csms.db'}"


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database, dropped after the test."""
    server = postgres_server_url()
    name = f"csms_test_{secrets.token_hex(6)}"
    try:
        admin = await asyncpg.connect(server, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        service_missing(f"PostgreSQL at {mask_password(server)} is unreachable: {exc}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield urlsplit(server)._replace(path=f"/{name}").geturl()
    admin = await asyncpg.connect(server, timeout=5)
    try:
        # FORCE: a test that leaked a connection must not leak its database too.
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest) -> str:
    """The URL of a fresh database of each kind in turn."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    """An opened, migrated Storage on ``database_url``; closed after the test."""
    opened = await open_storage(database_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def amqp_url() -> str:
    """The URL of a reachable RabbitMQ (its default vhost unless configured)."""
    url = amqp_server_url()
    try:
        connection = await aio_pika.connect(url, timeout=5)
    except (OSError, TimeoutError, aiormq.exceptions.AMQPError) as exc:
        service_missing(f"RabbitMQ at {mask_password(url)} is unreachable: {exc}")
    await connection.close()
    return url


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
        pytest.param("memory", id="memory"),
    ]
)
def storage_url(request: pytest.FixtureRequest) -> str | None:
    """The URL of a fresh database of each kind in turn; None for the in-memory storage."""
    if request.param == "memory":
        return None
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
async def any_storage(storage_url: str | None) -> AsyncIterator[Storage]:
    """A fresh Storage of each kind in turn (SQLite, PostgreSQL, in memory); closed after."""
    opened = MemoryStorage() if storage_url is None else await open_storage(storage_url)
    try:
        yield opened
    finally:
        await opened.close()
