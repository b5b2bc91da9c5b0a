"""The project installs as one package, `indexnas`: a user's own `zoo.py`, `search.py`, ... cannot shadow it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import indexnas

PIPELINE = ("zoo", "surgery", "search", "reports")


@pytest.fixture
def clashing_folder(tmp_path: Path) -> Path:
    """A working folder holding modules named like the pipeline's folders, as a user's project may."""
    for name in PIPELINE:
        (tmp_path / f"{name}.py").write_text(f"raise ImportError('the user\\'s own {name}.py was imported')\n")
    return tmp_path


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_pipeline_imports_under_indexnas_beside_a_users_own_modules(clashing_folder: Path) -> None:
    code = (
        "import sys; sys.path.insert(0, '');"  # the user's folder first, as `python script.py` there has it
        "import indexnas.zoo, indexnas.surgery, indexnas.search.study, indexnas.reports, indexnas.cli;"
        "assert 'zoo' not in sys.modules and 'search' not in sys.modules, sorted(sys.modules);"
        "from indexnas.cli import build_parser; build_parser().format_help(); print('ok')"
    )
    result = _run(code, clashing_folder)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_no_top_level_pipeline_packages_are_installed(tmp_path: Path) -> None:
    result = _run("import importlib.util as u; print([n for n in %r if u.find_spec(n)])" % (PIPELINE,), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_package_is_typed() -> None:
    assert (Path(indexnas.__file__).parent / "py.typed").is_file()
