"""The event loop ``csms serve`` and ``csms relay`` run on (csms.cli.run_event_loop)."""

from __future__ import annotations

import asyncio
import sys
import traceback

import pytest

from csms.cli import run_event_loop


def failure_inside_the_server() -> BaseException:
    """Run a server stand-in that logs a failure the way the server would; return it."""
    caught: list[BaseException] = []

    def handler() -> None:
        raise RuntimeError("a handler failed")

    async def server() -> None:
        try:
            handler()
        except RuntimeError as exc:
            caught.append(exc)

    run_event_loop(server)
    return caught[0]


class TestRunEventLoop:
    def test_a_logged_traceback_does_not_mention_a_missing_uvloop(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without uvloop, a failure inside the server carries no ImportError along."""
        monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` fail
        failure = failure_inside_the_server()
        assert failure.__context__ is None
        assert "uvloop" not in "".join(traceback.format_exception(failure))

    def test_without_uvloop_the_server_runs_on_asyncios_loop(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A platform without uvloop (Windows) still serves, on the standard loop."""
        monkeypatch.setitem(sys.modules, "uvloop", None)
        loops: list[str] = []

        async def server() -> None:
            loops.append(type(asyncio.get_running_loop()).__module__)

        run_event_loop(server)
        assert loops[0].startswith("asyncio")

    @pytest.mark.skipif(sys.platform == "win32", reason="uvloop does not install on Windows")
    def test_where_uvloop_installs_the_server_runs_on_it(self) -> None:
        """uvloop is a default dependency, so a plain install serves on the faster loop."""
        loops: list[str] = []

        async def server() -> None:
            loops.append(type(asyncio.get_running_loop()).__module__)

        run_event_loop(server)
        assert loops[0].startswith("uvloop")
