"""Shared fixtures: a tiny study's settings, and a throw-away PostgreSQL server on loopback."""

from __future__ import annotations

import gc
import os
import subprocess
from pathlib import Path

# One intra-op thread, here and in the CLIs the tests start: the tiny models gain nothing from a second one, and
# threads that spin-wait for a busy core (PostgreSQL, Chromium, the suite's own subprocesses, other jobs) make a
# test several times slower. Set before torch is imported; an explicit OMP_NUM_THREADS still wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from pgserver import PostgresServer, Unavailable  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

ASSETS = Path(__file__).parent / "assets"
TINY_MODEL = f"{ASSETS / 'two_stage_denoiser.py'}:build"  # two pool/unpool pairs, 8 channels, grey input
PG_PASSWORD = "s3cret Pg-pw"  # must never appear in any output; the space is legal in a URL and defeats regexes


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what collection imported (torch, optuna, matplotlib: hundreds of thousands of objects) out of the
    garbage collector's reach: a search collects after every trained trial (search/study.py, `work`), and a full
    collection over that heap costs about 0.4 s each time. The tests' own garbage is still collected."""
    gc.collect()
    gc.freeze()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """After a test file's last test (its module fixtures gone), freeze what it left alive, such as the
    modules it imported lazily (timm, torchvision, torch._dynamo): the next file's collections skip them too."""
    yield
    if nextitem is None or getattr(nextitem, "module", None) is not getattr(item, "module", None):
        gc.collect()
        gc.freeze()


def tiny_settings(tmp_path: Path, **overrides) -> dict:
    """Keyword arguments of SearchSettings for a study that runs in seconds on one CPU core."""
    options = dict(task="denoise", model=TINY_MODEL, study="tiny", storage=str(tmp_path / "studies.log"),
                   out=str(tmp_path / "run"), trials=2, budget_steps=2, batch_size=4, eval_size=32,
                   progress=False, seed=0,
                   retrain_seeds=0)  # retraining the front has its own tests (test_retrain.py)
    return {**options, **overrides}


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """postgresql://indexnas:PASSWORD@127.0.0.1:PORT/postgres on a fresh cluster, removed at the end.

    Skipped when the server binaries are missing (Debian: apt-get install -y postgresql).
    """
    server = postgres_server()
    try:
        yield server.url
    finally:
        server.remove()


def postgres_server() -> PostgresServer:
    """A started throw-away server (see tests/pgserver.py); skips the test when PostgreSQL is not installed."""
    try:
        server = PostgresServer(PG_PASSWORD)
    except Unavailable as reason:
        pytest.skip(str(reason))
    except subprocess.CalledProcessError as error:
        pytest.fail(f"could not create a PostgreSQL cluster: {error.stderr.decode(errors='replace')}")
    try:
        server.start()
    except subprocess.CalledProcessError as error:
        server.remove()
        pytest.fail(f"could not start PostgreSQL: {error.stderr.decode(errors='replace')}")
    return server
