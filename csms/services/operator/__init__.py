"""The operator edge's one definition of each resource and rule.

The REST API (csms/edge/api.py), the CLI (csms/cli.py) and the AMQP command
consumer (csms/adapters/amqp/command_queue.py) read requests, check them and
write records through these modules, so the three cannot drift apart:

- ``rules``: the bounds (password length, queue expiry, page size), the
  error every edge answers (``OperatorError``: status, kind, message) and
  how a pydantic verdict becomes one;
- ``requests``: the typed request bodies and query strings;
- ``resources``: the typed records the edges answer, built from domain objects.

pydantic lives here and only here; nothing on the OCPP path imports it
(docs/adr/0008-typed-operator-edge.md).
"""
