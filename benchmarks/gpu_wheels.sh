#!/usr/bin/env bash
# Wheels of the dependencies the GPU machine's image lacks (optuna and fvcore with their own, and a
# setuptools new enough to install this checkout editable), for Python 3.12 on x86-64, into .whl/
# (git-ignored), at the versions installed here. Run it where PyPI is reachable; carry `.whl` to the
# GPU machine, where benchmarks/gpu_check.sh installs them offline. PYTHON_VERSION: that machine's (3.12).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
binary=(optuna alembic colorlog SQLAlchemy Mako yacs termcolor setuptools)  # wheels on PyPI
source_only=(fvcore iopath)  # sdists only on PyPI, pure Python: built into wheels here

pinned() {  # NAME==VERSION as installed for $python
    for name in "$@"; do
        echo "$name==$("$python" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")"
    done
}

mkdir -p .whl
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version "${PYTHON_VERSION:-3.12}" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl $(pinned "${binary[@]}")
"$python" -m pip wheel --quiet --no-deps -w .whl $(pinned "${source_only[@]}")
ls .whl
