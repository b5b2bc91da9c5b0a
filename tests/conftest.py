"""Shared fixtures: a tiny study's settings, and a throw-away PostgreSQL server on loopback."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

ASSETS = Path(__file__).parent / "assets"
TINY_MODEL = f"{ASSETS / 'two_stage_denoiser.py'}:build"  # two pool/unpool pairs, 8 channels, grey input
PG_PASSWORD = "s3cret Pg-pw"  # must never appear in any output; the space is legal in a URL and defeats regexes


def tiny_settings(tmp_path: Path, **overrides) -> dict:
    """Keyword arguments of SearchSettings for a study that runs in seconds on one CPU core."""
    options = dict(task="denoise", model=TINY_MODEL, study="tiny", storage=str(tmp_path / "studies.log"),
                   out=str(tmp_path / "run"), trials=2, budget_steps=2, batch_size=4, eval_size=32,
                   progress=False, seed=0)
    return {**options, **overrides}


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    candidates = [found] if found else sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    for initdb in candidates:
        if Path(initdb).with_name("pg_ctl").exists():
            return Path(initdb).resolve().parent
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """postgresql://indexnas:PASSWORD@127.0.0.1:PORT/postgres on a fresh cluster, stopped at the end.

    Skipped when the server binaries are missing (Debian: apt-get install -y postgresql). As root the
    cluster runs as the `postgres` user, which initdb requires.
    """
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed: apt-get install -y postgresql")
    as_owner: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="indexnas-pg-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_owner = ["runuser", "-u", "postgres", "--"]
    data, password_file = root / "data", root / "password"
    password_file.write_text(PG_PASSWORD + "\n")
    if as_owner:
        os.chown(password_file, owner.pw_uid, owner.pw_gid)
    port = _free_port()

    def run(*command: str) -> None:
        subprocess.run([*as_owner, *command], check=True, capture_output=True, timeout=120)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "indexnas", f"--pwfile={password_file}",
            "--auth=scram-sha-256", "-E", "UTF8", "--no-sync")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60",
            "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    except subprocess.CalledProcessError as error:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {error.stderr.decode(errors='replace')}")
    try:
        yield f"postgresql://indexnas:{PG_PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_owner, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
