#!/usr/bin/env bash
# The GPU check of issue 29 (deliverable 7): one run, at most 8 minutes on one H100/H200, writes
# $OUT/check.json and $OUT/check.log ($OUT defaults to ./gpu-check-out). What it checks: check.py.
#
# On the device (the workplace's device tool), after `bash tools/gpu/prepare.sh` here once:
#   run(command="bash tools/gpu/check.sh", carry=["tools/gpu/wheels"], timeout_s=540)
# A second, shorter try on the same warm machine (say only the capacity):
#   run(command="ONEPASS_GPU_BUDGET_S=200 ONEPASS_GPU_SECTIONS=step_times,capacity bash tools/gpu/check.sh",
#       carry=["tools/gpu/wheels"], timeout_s=300)
# Rehearsal on the CPU (tiny models, every section, same JSON keys; under 5 minutes):
#   ONEPASS_GPU_REHEARSAL=1 bash tools/gpu/check.sh
# Quick rehearsal (under a minute; tests/test_gpu_check.py runs it):
#   ONEPASS_GPU_QUICK=1 bash tools/gpu/check.sh
#
# Settings: OUT, ONEPASS_GPU_BUDGET_S (seconds for check.py; default 445 device, 290 rehearsal,
# 62 quick), ONEPASS_GPU_SECTIONS (comma list), PYTHON (interpreter), ONEPASS_GPU_WHEELS (1: install
# the carried wheels, the device default; 0: not, the rehearsal default).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [[ "${ONEPASS_GPU_QUICK:-}" == 1 ]]; then default_budget=62
elif [[ "${ONEPASS_GPU_REHEARSAL:-}" == 1 ]]; then default_budget=290
else default_budget=445; fi
budget=${ONEPASS_GPU_BUDGET_S:-$default_budget}
hard=$(( ${budget%.*} + 40 ))  # check.py ends itself by its budget; this only stops a hung device call

if [[ -n "${PYTHON:-}" ]]; then py=$PYTHON
elif [[ -n "${VIRTUAL_ENV:-}" ]]; then py=$VIRTUAL_ENV/bin/python
elif [[ -x "$ROOT/.venv/bin/python" && "${ONEPASS_GPU_REHEARSAL:-}${ONEPASS_GPU_QUICK:-}" != "" ]]; then py=$ROOT/.venv/bin/python
else py=python3; fi  # the device image's python3 holds its PyTorch

# The device image lacks some packages onepass imports: install the carried wheels (prepare.sh) into
# a private folder that shadows the image's own versions (transformers is pinned to the tested one).
shopt -s nullglob
wheels=("$ROOT"/tools/gpu/wheels/*.whl)
rehearsal=${ONEPASS_GPU_REHEARSAL:-}${ONEPASS_GPU_QUICK:-}
install=${ONEPASS_GPU_WHEELS:-$([[ -z "$rehearsal" ]] && echo 1 || echo 0)}  # 1: install them in a rehearsal too
if [[ ${#wheels[@]} -gt 0 && "$install" == 1 ]]; then
    site=${TMPDIR:-/tmp}/onepass-gpu-site
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
        "${wheels[@]}" 2>&1 | tee -a "$OUT/check.log" || { echo "wheel install failed" | tee -a "$OUT/check.log"; exit 3; }
    export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
elif [[ "$install" == 1 ]]; then
    echo "no wheels in tools/gpu/wheels (run tools/gpu/prepare.sh here and carry the folder); trying without" \
        | tee -a "$OUT/check.log"
fi
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}

if [[ -n "$rehearsal" ]]; then
    # on a shared CPU, OpenMP threads spinning while they wait make every small op a scheduler
    # quantum (onepass/cli/bench.py measured 14 us -> 5 ms); the device's CPU work is not timed
    export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
fi
echo "check.sh: $py, budget ${budget} s, hard stop ${hard} s, out $OUT" | tee -a "$OUT/check.log"
timeout -k 10 "$hard" "$py" "$ROOT/tools/gpu/check.py"
rc=$?
if [[ $rc == 124 || $rc == 137 ]]; then
    echo "check.sh: check.py stopped at the hard limit (${hard} s); check.json holds the sections written before" \
        | tee -a "$OUT/check.log"
fi
exit $rc
