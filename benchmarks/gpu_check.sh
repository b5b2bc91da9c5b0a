#!/usr/bin/env bash
# The GPU check (issue 16): gpu-marked tests, operators, training-step overhead and the search on one GPU.
#
#   benchmarks/gpu_check.sh [--out DIR] [--cpu-smoke]
#
# Writes three files to DIR (default: $OUT when set, else runs/gpu_check): gpu_check.md, the section for
# BENCHMARKS.md (GPU model, driver, torch, CUDA); gpu_check.json, every figure; gpu_check.log, every
# step's output. Both reports are rewritten after each step, and each step runs under its own time limit
# (about 8 minutes in all on one H200-class GPU), so a step that fails or runs out of time costs only its
# own figures. --cpu-smoke runs every step at toy sizes on the CPU, to test the script without a GPU.
# Environment: PYTHON (default .venv/bin/python, else python3), SEARCH_SECONDS (each search run, default
# 75). Without optuna/fvcore, wheels in .whl/ (benchmarks/gpu_wheels.sh) are installed to a temporary
# folder; without indexnas, the checkout is installed editable (offline, no dependencies).
set -uo pipefail
cd "$(dirname "$0")/.."

out_dir="${OUT:-runs/gpu_check}"
smoke=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out_dir="$2"; shift 2 ;;
        --cpu-smoke) smoke=1; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1 (use --out DIR, --cpu-smoke)" >&2; exit 2 ;;
    esac
done
python="${PYTHON:-}"
if [ -z "$python" ]; then
    if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi
mkdir -p "$out_dir"
out_dir="$(cd "$out_dir" && pwd)"
rm -f "$out_dir/gpu_check.md" "$out_dir/gpu_check.json" "$out_dir/gpu_check.log"
parts="$(mktemp -d)"  # each step's raw figures; search studies and checkpoints too
trap 'rm -rf "$parts"' EXIT

if ! "$python" -c "import optuna, fvcore, indexnas.search.cli, indexnas.zoo" 2>/dev/null; then
    if compgen -G ".whl/*.whl" > /dev/null; then  # optuna, fvcore, their needs, a recent setuptools
        echo "installing .whl/*.whl into $parts/site" >&2
        "$python" -m pip install --quiet --no-index --no-deps --no-compile --target "$parts/site" .whl/*.whl >&2
        export PYTHONPATH="$parts/site${PYTHONPATH:+:$PYTHONPATH}"
    fi
    if ! "$python" -c "import indexnas.search.cli, indexnas.zoo" 2>/dev/null; then
        echo "indexnas is not installed for $python: installing this checkout editable, offline" >&2
        "$python" -m pip install --quiet --no-index --no-deps --no-build-isolation -e . >&2
    fi
fi
if ! "$python" -c "import torch, optuna, timm, fvcore, skimage, pytest, indexnas.search.cli, indexnas.zoo" >&2; then
    echo "gpu_check.sh: $python lacks the project or its dependencies (pip install -e '.[test]'; on the GPU" \
         "machine carry .whl from benchmarks/gpu_wheels.sh)" >&2
    exit 2
fi

if [ "$smoke" = 1 ]; then
    export OMP_NUM_THREADS=1
    device=cpu
    test_paths=(tests/contracts/test_gpu.py)  # collects fast; every test in it skips without CUDA
    ops_args=(--shapes tiny --reps 2)
    small_variants=(--variants o2o-shared o2o-modelwise m2o)
    dncnn_args=(--width 0.25 --size 40 --batch 4 --reps 1 "${small_variants[@]}")
    segnet_args=(--width 0.25 --size 32 --batch 2 --reps 1 "${small_variants[@]}")
    search_args=(--width 0.25 --batch-size 4 --budget-steps 2 --trials 1 --seconds 60 --probe-batches 2)
else
    if ! "$python" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
        echo "gpu_check.sh: torch sees no CUDA device here (use --cpu-smoke to test the script on the CPU)" >&2
        exit 2
    fi
    device=cuda
    test_paths=(tests)  # every gpu-marked test of the suite
    threads=$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))  # CPU threads for the surgery that precedes GPU timing
    ops_args=(--reps 10)  # the paper-size shapes 8x64x160x160 and 16x256x80x80, fp32 and bf16
    dncnn_args=(--width 1 --size 40 --batch 128 --reps 10 --threads "$threads")  # the paper's DnCNN batch
    segnet_args=(--width 1 --size 320 --batch 4 --reps 10 --surgery-size 64 --threads "$threads")
    search_args=(--seconds "${SEARCH_SECONDS:-75}")  # the paper's batch 128 of 40x40 patches, width 1
fi
search_limit=$(( 2 * ${SEARCH_SECONDS:-75} + 60 ))  # two runs, their stop grace, the probe and start-up
command="benchmarks/gpu_check.sh"
if [ "$smoke" = 1 ]; then command+=" --cpu-smoke"; fi
"$python" benchmarks/bench_gpu_report.py env "$parts"
: > "$parts/steps.tsv"

# step NAME LIMIT_S COMMAND...: run it under `timeout` (status 124: cut at the limit), then rewrite the reports
step() {
    local name="$1" limit="$2"
    shift 2
    local start=$SECONDS
    echo "== $name (limit ${limit} s): $*" | tee -a "$out_dir/gpu_check.log" >&2
    timeout -k 10 "$limit" "$@" >> "$out_dir/gpu_check.log" 2>&1
    local status=$?
    printf '%s\t%d\t%d\t%d\n' "$name" "$status" "$((SECONDS - start))" "$limit" >> "$parts/steps.tsv"
    echo "   exit $status after $((SECONDS - start)) s" | tee -a "$out_dir/gpu_check.log" >&2
    "$python" benchmarks/bench_gpu_report.py report "$parts" "$out_dir" --command "$command" > /dev/null
}

step pytest-gpu 70 "$python" -m pytest -q -m gpu "${test_paths[@]}" -p no:cacheprovider \
    --junitxml="$parts/pytest-gpu.xml"
step ops 50 "$python" benchmarks/bench_ops.py --device "$device" --no-normalisation --json "$parts/ops.json" \
    "${ops_args[@]}"
step models-dncnn_segnet 55 "$python" benchmarks/bench_models.py --device "$device" --hosts dncnn_segnet \
    --json "$parts/models-dncnn_segnet.json" "${dncnn_args[@]}"
step models-segnet 55 "$python" benchmarks/bench_models.py --device "$device" --hosts segnet \
    --json "$parts/models-segnet.json" "${segnet_args[@]}"
step search "$search_limit" "$python" benchmarks/bench_gpu_search.py --out "$parts/search" \
    --json "$parts/search.json" --workers 1 2 "${search_args[@]}"
cat "$out_dir/gpu_check.md"
