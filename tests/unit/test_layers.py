"""The layers of the tree: every import points inward (README, "How it is built")."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Each layer and the layers it may import (besides itself). Outer layers first.
ALLOWED: dict[str, set[str]] = {
    # composition root: wires everything
    "csms.root": {
        "csms.edge",
        "csms.adapters",
        "csms.transport",
        "protocols",
        "csms.services",
        "csms.core",
        "csms.telemetry",
    },
    # operator edge: HTTP, REST, CLI helpers; reaches stations through services and ports
    "csms.edge": {"csms.services", "csms.core", "csms.telemetry"},
    # adapters implement ports: storage, AMQP
    "csms.adapters": {"csms.services", "csms.core", "csms.telemetry"},
    # station transport: sockets, handshake, the OCPP-J session; protocols come injected
    "csms.transport": {"csms.services", "csms.core", "csms.telemetry"},
    # OCPP version adapters: the wire vocabulary of the session, services, core
    "protocols": {"csms.transport.rpc", "csms.services", "csms.core", "csms.telemetry"},
    "csms.services": {"csms.core", "csms.telemetry"},
    # the tolerance table counts its uses; the rest of the core imports nothing outward
    "csms.core": {"csms.telemetry.metrics"},
    "csms.telemetry": set(),
}
ROOT_MODULES = {"csms", "csms.__main__", "csms.app", "csms.cli"}
# Third-party I/O libraries the inner layers must not touch.
IO_LIBRARIES = {"asyncpg", "aio_pika", "aiormq", "websockets", "aiohttp", "ocpp", "sqlite3"}
NO_IO = ("csms.core", "csms.services")
# The OCPP-J session and its framing are sans-I/O: not even asyncio (ADR 0009).
SANS_IO = ("csms.transport.session", "csms.transport.rpc")
SANS_IO_BANNED = {"asyncio", *IO_LIBRARIES}
# pydantic (the typed operator edge, docs/adr/0008) stays off the station path:
# only the operator's edges (REST, CLI, the AMQP command queue) import it, or
# the operator models that use it.
PYDANTIC_USERS = (
    "csms.services.operator",
    "csms.edge",
    "csms.adapters.amqp.command_queue",
    "csms.app",
    "csms.cli",
)
PYDANTIC_FREE = ("csms.services.operator.limits", "csms.services.operator.errors")
# Arrows that point the wrong way today, each to be removed by the work that fixes it.
KNOWN: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    if module in ROOT_MODULES:
        return "csms.root"
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def imports(path: Path) -> set[str]:
    """The modules ``path`` imports: for ``from X import a`` the module ``X.a``
    when ``a`` is one (a file or a package of ours), else ``X``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if is_module(name) else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def is_module(name: str) -> bool:
    where = ROOT.joinpath(*name.split("."))
    return where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()


def sources() -> list[Path]:
    return sorted([*ROOT.glob("csms/**/*.py"), *ROOT.glob("protocols/**/*.py")])


def permitted(target: str, allowed: set[str]) -> bool:
    return any(target == a or target.startswith(a + ".") for a in allowed)


class TestLayers:
    def test_every_module_belongs_to_a_layer(self) -> None:
        """A new module in csms/ goes into one of the layer packages."""
        assert [m for p in sources() if layer_of(m := module_name(p)) is None] == []

    def test_imports_point_inward(self) -> None:
        """No module imports a layer outside its own or the ones inside it."""
        wrong = set()
        for path in sources():
            source = module_name(path)
            layer = layer_of(source)
            assert layer is not None
            for target in imports(path):
                target_layer = layer_of(target)
                if target_layer is None or target_layer == layer:
                    continue
                if not permitted(target, ALLOWED[layer]):
                    wrong.add((source, target_layer))
        assert sorted(wrong - KNOWN) == []
        assert sorted(KNOWN - wrong) == [], "fixed: drop these from KNOWN"

    def test_version_adapters_do_not_import_each_other(self) -> None:
        """ocpp16 and ocpp201 share only what lives below them."""
        for path in sources():
            source = module_name(path)
            for version, other in (("ocpp16", "ocpp201"), ("ocpp201", "ocpp16")):
                if source.startswith(f"protocols.{version}"):
                    assert not any(t.startswith(f"protocols.{other}") for t in imports(path))

    def test_core_and_services_do_no_io(self) -> None:
        """The domain and the services never import a driver, a socket library or ocpp."""
        wrong = [
            (module_name(p), t)
            for p in sources()
            if module_name(p).startswith(NO_IO)
            for t in imports(p)
            if t.split(".")[0] in IO_LIBRARIES
        ]
        assert wrong == []

    def test_only_the_operator_edge_imports_pydantic(self) -> None:
        """pydantic and the models built on it are imported by the operator edge alone."""

        def uses_pydantic(target: str) -> bool:
            if target.split(".", maxsplit=1)[0] in ("pydantic", "pydantic_core"):
                return True
            return target.startswith("csms.services.operator.") and not target.startswith(
                PYDANTIC_FREE
            )

        users = {module_name(p) for p in sources() if any(map(uses_pydantic, imports(p)))}
        assert sorted(m for m in users if not m.startswith(PYDANTIC_USERS)) == []

    def test_the_session_is_sans_io(self) -> None:
        """session.py and rpc.py import neither asyncio nor any I/O library."""
        wrong = [
            (module_name(p), t)
            for p in sources()
            if module_name(p) in SANS_IO
            for t in imports(p)
            if t.split(".")[0] in SANS_IO_BANNED
        ]
        assert wrong == []

    def test_no_import_escapes_the_walk(self) -> None:
        """No relative import and no importlib / __import__ call hides an arrow from this test."""
        hidden = []
        for path in sources():
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.level > 0:
                    hidden.append((module_name(path), f"relative import level {node.level}"))
                if isinstance(node, ast.Call):
                    name = ast.unparse(node.func)
                    if name in {"importlib.import_module", "import_module", "__import__"}:
                        hidden.append((module_name(path), name))
        assert hidden == []
