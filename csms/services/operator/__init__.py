"""The operator edge's one definition of each resource and rule.

The REST API (csms/edge/api.py), the CLI (csms/cli.py) and the AMQP command
consumer (csms/adapters/amqp/command_queue.py) read requests, check them and
write records through these modules, so the three cannot drift apart:

- ``limits``: the bounds as plain numbers (password length, queue expiry,
  page size); ``errors``: the error every edge answers (``OperatorError``:
  status, kind, message; the dispatcher's ``CommandRefused`` is one). Neither
  imports pydantic, so the command dispatcher can use them;
- ``rules``: the shared types (date-time, password, ids) and how a pydantic
  verdict becomes an ``OperatorError``;
- ``requests``: the typed request bodies and query strings;
- ``resources``: the typed records the edges answer, built from domain objects.

pydantic lives here and only here; nothing on the OCPP path imports it
(docs/adr/0008-typed-operator-edge.md).
"""
