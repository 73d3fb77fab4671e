"""A PostgreSQL server of the test's own: password authentication, stopped and started at will.

The shared server on this project's machines trusts every connection (no password can be
wrong) and other test sessions use it at the same time, so tests that need a password to be
checked, or the server to go away, start their own from the installed binaries (``initdb`` in a
temporary directory, a free loopback port). Without the binaries the tests skip, except under
CI=true, where that is a failure: CI must not pass by testing nothing.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PASSWORD = "s3cret-Pw"  # the throwaway server's superuser password


def _server_bin() -> Path | None:
    if pg_config := shutil.which("pg_config"):
        bindir = Path(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip())
        if (bindir / "initdb").exists():
            return bindir
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    return Path(initdb).parent if (initdb := shutil.which("initdb")) else None


class PrivatePostgres:
    """One throwaway cluster: superuser ``postgres`` with ``PASSWORD``, scram authentication."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir, self.root = bindir, root
        self.data = root / "data"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        # initdb and postgres refuse to run as root: they run as the postgres system user then.
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def url(self, database: str = "postgres", password: str | None = PASSWORD) -> str:
        secret = f":{password}" if password is not None else ""
        return f"postgresql://postgres{secret}@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str) -> None:
        command = [*self.as_owner, str(self.bindir / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")

    def init(self) -> None:
        password_file = self.root / "pw"
        password_file.write_text(PASSWORD + "\n")
        if self.as_owner:
            shutil.chown(self.root, "postgres")
            shutil.chown(password_file, "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={password_file}", "-N"
        )
        password_file.unlink()

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "server.log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        """A new database; its URL (with the password)."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def started_at(self) -> float:
        """When the server process started (seconds since the epoch), read from the server."""
        import psycopg

        with psycopg.connect(self.url(), connect_timeout=10) as connection:
            return connection.execute("SELECT extract(epoch FROM pg_postmaster_start_time())").fetchone()[0]


@contextmanager
def running_private_postgres() -> Iterator[PrivatePostgres]:
    """A running private server, stopped and deleted on leaving (tests skip without the binaries)."""
    bindir = _server_bin()
    runuser_missing = os.geteuid() == 0 and shutil.which("runuser") is None
    if bindir is None or runuser_missing:
        reason = "no PostgreSQL server binaries (initdb, pg_ctl) to start a private server"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    # Not under pytest's tmp_path: its root is private to this user, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="harness-pg-"))
    server = PrivatePostgres(bindir, root)
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(RuntimeError):  # not started, or already stopped by the test
            server._run("pg_ctl", "-D", str(server.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
