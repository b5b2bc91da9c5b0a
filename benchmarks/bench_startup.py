"""Start-up benchmark: CPU time of `indexnas --help` against `python -c "import torch"`.

Every command (and every search worker process) pays the start-up cost once; building the parser
must not load timm, torchvision, torch._dynamo, matplotlib, fvcore or optuna. The goal is `indexnas
--help` within 1.5x of importing torch, both measured in this run as the CPU time (user + system)
of fresh processes, alternating, median of the repeats. Usage::

    python benchmarks/bench_startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

GOAL = 1.5


def cpu_seconds(command: list[str]) -> float:
    """User + system CPU time of one run of ``command`` (a fresh process, output discarded)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def commands() -> dict[str, list[str]]:
    """The two measured commands; `indexnas` is the console script beside this interpreter."""
    script = Path(sys.executable).with_name("indexnas")
    help_command = [str(script), "--help"] if script.exists() else [sys.executable, "-m", "indexnas.cli", "--help"]
    return {"import torch": [sys.executable, "-c", "import torch"], "indexnas --help": help_command}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs of each command (default 7)")
    args = parser.parse_args()
    runs = commands()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for name, command in runs.items():  # warm the file cache once, unmeasured
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(args.repeats):
        for name, command in runs.items():  # alternating, so background load hits both alike
            times[name].append(cpu_seconds(command))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; {args.repeats} runs each")
    for name, values in times.items():
        print(f"{name:<16} median {statistics.median(values):.2f} s CPU  (min {min(values):.2f}, max {max(values):.2f})")
    ratio = statistics.median(times["indexnas --help"]) / statistics.median(times["import torch"])
    print(f"ratio {ratio:.2f}x (goal <= {GOAL}x): {'met' if ratio <= GOAL else 'NOT met'}")
    print(f"command: {shutil.which(runs['indexnas --help'][0]) or runs['indexnas --help'][0]} --help")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
