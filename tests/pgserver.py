"""A throw-away PostgreSQL server on loopback (for the tests and benchmarks/bench_kill.py).

As root the cluster runs as the `postgres` user, which initdb requires. `stop` and `start` keep the
data and the port, so a test can take the server away in the middle of a search and bring it back.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


class Unavailable(RuntimeError):
    """The server binaries or the user to run them as are missing (a reason to skip, not a failure)."""


def server_binaries() -> Path | None:
    found = shutil.which("initdb")
    candidates = [found] if found else sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    for initdb in candidates:
        if Path(initdb).with_name("pg_ctl").exists():
            return Path(initdb).resolve().parent
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """initdb + pg_ctl in a temporary folder; ``url`` holds the password (never print it unmasked)."""

    def __init__(self, password: str, user: str = "indexnas") -> None:
        self.bindir = server_binaries()
        if self.bindir is None:
            raise Unavailable("PostgreSQL server binaries (initdb, pg_ctl) are not installed: apt-get install -y postgresql")
        self.as_owner: list[str] = []
        self.root = Path(tempfile.mkdtemp(prefix="indexnas-pg-"))
        owner = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise Unavailable("running as root and there is no `postgres` user to run the server as") from None
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        self.data = self.root / "data"
        password_file = self.root / "password"
        password_file.write_text(password + "\n")
        if owner is not None:
            os.chown(password_file, owner.pw_uid, owner.pw_gid)
        self.port = free_port()
        self.url = f"postgresql://{user}:{password}@127.0.0.1:{self.port}/postgres"
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", user, f"--pwfile={password_file}",
                  "--auth=scram-sha-256", "-E", "UTF8", "--no-sync")
        password_file.unlink()

    def _run(self, *command: str) -> None:
        subprocess.run([*self.as_owner, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                  "-t", "60", "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        """Stop at once (as a crash or an outage would): every connection is cut."""
        subprocess.run([*self.as_owner, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                        "stop"], capture_output=True, timeout=60)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
