"""A PostgreSQL server of the test's own, to restart and stop at will.

The shared server (CSMS_TEST_DATABASE_URL) serves every test at once, so a
test that restarts or stops "the database" runs its own: `initdb` into the
test's temporary directory and `pg_ctl` on a free port, from the same
installation. Started as the `postgres` user when the tests run as root
(PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import service_missing


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """``start()``, then ``url``; ``restart()``, ``stop()``, ``start()`` again; ``destroy()``."""

    def __init__(self) -> None:
        binaries = _binaries()
        if binaries is None:
            service_missing("no PostgreSQL installation (initdb, pg_ctl) for a private server")
        self._bin = binaries
        # Its own directory under /tmp: the postgres user cannot enter pytest's (root, 0700).
        self._dir = Path(tempfile.mkdtemp(prefix="csms-pg-"))
        self._data = self._dir / "data"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str | Path, timeout: float = 60) -> None:
        command = [str(a) for a in args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)

    def start(self) -> None:
        if not self._data.exists():
            if self._as_postgres:
                shutil.chown(self._dir, "postgres", "postgres")
            self._run(
                self._bin / "initdb", "-D", self._data, "-U", "postgres", "-A", "trust",
                "--no-sync", "-E", "UTF8",
            )  # fmt: skip
        options = f"-p {self.port} -k {self._dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(self._bin / "pg_ctl", "-D", self._data, "-o", options, "-w", "-l",
                  self._dir / "log", "start")  # fmt: skip

    def restart(self) -> None:
        """A fast restart: sessions are terminated (57P01), as a managed failover does."""
        self._run(self._bin / "pg_ctl", "-D", self._data, "-m", "fast", "-w", "-l",
                  self._dir / "log", "restart")  # fmt: skip

    def stop(self) -> None:
        self._run(self._bin / "pg_ctl", "-D", self._data, "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        """Stop it if it runs and remove its files."""
        try:
            if (self._data / "postmaster.pid").exists():
                self._run(self._bin / "pg_ctl", "-D", self._data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
