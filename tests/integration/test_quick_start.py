"""The README's quick start, run as written: the commands a newcomer copies, in order."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
STEP_TIMEOUT_S = 60.0


def quick_start_commands() -> list[list[str]]:
    """The shell commands of the README's "Run it" section, continuation lines joined."""
    section = README.read_text(encoding="utf-8").split("\n## Run it", 1)[1].split("\n## ", 1)[0]
    commands: list[list[str]] = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class QuickStart:
    """Runs README commands in a scratch directory, ``csms serve`` on free ports."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port, self.http_port = free_port(), free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
        self.env.update({"CSMS_PORT": str(self.port), "CSMS_HTTP_PORT": str(self.http_port)})
        self.server: subprocess.Popen[bytes] | None = None

    def argv(self, words: list[str]) -> list[str]:
        """The command as this environment runs it: this interpreter, the repository's
        scripts, the free port in place of the README's 9000."""
        program, *args = words
        if program == "csms":
            head = [sys.executable, "-m", "csms"]
        elif program == "python":
            head = [sys.executable]
        else:
            raise AssertionError(f"the quick start runs {program!r}, which this test does not")
        args = [str(ROOT / a) if a.startswith("scripts/") else a for a in args]
        args = [a.replace("127.0.0.1:9000", f"127.0.0.1:{self.port}") for a in args]
        return head + args

    def run(self, words: list[str]) -> subprocess.CompletedProcess[str]:
        if words[:2] == ["csms", "serve"]:
            self.start_server(words)
            return subprocess.CompletedProcess(words, 0, "", "")
        return subprocess.run(
            self.argv(words),
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_S,
            check=False,
        )

    def start_server(self, words: list[str]) -> None:
        log = (self.workdir / "serve.log").open("wb")
        self.server = subprocess.Popen(
            self.argv(words), cwd=self.workdir, env=self.env, stdout=log, stderr=log
        )
        deadline = time.monotonic() + STEP_TIMEOUT_S
        url = f"http://127.0.0.1:{self.http_port}/health/live"
        while time.monotonic() < deadline:
            assert self.server.poll() is None, f"csms serve exited: {self.server_log()}"
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise AssertionError("csms serve did not become live")

    def server_log(self) -> str:
        return (self.workdir / "serve.log").read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()


@pytest.fixture
def quick_start(tmp_path: Path) -> Iterator[QuickStart]:
    runner = QuickStart(tmp_path)
    yield runner
    runner.stop()


def test_the_quick_start_commands_work_as_written(quick_start: QuickStart) -> None:
    """Copied in order, the README's commands start a server, register a station and a
    card, and the simulator's station boots and completes its charging session."""
    commands = [words for words in quick_start_commands() if words[:1] != ["pip"]]
    assert [w[:2] for w in commands][:1] == [["csms", "serve"]]
    assert any(w[:2] == ["python", "scripts/simulate.py"] for w in commands)
    for words in commands:
        done = quick_start.run(words)
        assert done.returncode == 0, (
            f"{shlex.join(words)} failed:\n{done.stdout}{done.stderr}\n"
            f"server log:\n{quick_start.server_log()}"
        )
    added = next(w for w in commands if w[:3] == ["csms", "stations", "add"])
    shown = quick_start.run(["csms", "stations", "show", added[3]])
    assert shown.returncode == 0, shown.stderr
    fields = {
        key.strip(): value.strip()
        for key, _, value in (line.partition("  ") for line in shown.stdout.splitlines())
    }
    assert fields.get("ocpp") == "1.6", shown.stdout
    assert fields.get("last boot", "-") != "-", shown.stdout
