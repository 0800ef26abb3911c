#!/usr/bin/env bash
# Create .venv and install fedkd with its dev extras, CPU torch first so no CUDA build is pulled.
# A user with a GPU who already has torch in the active environment can run: pip install -e '.[dev]'
# Quiet when it works: pip's whole output goes to .venv/setup.log, whose tail is shown if a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOG=.venv/setup.log

step() {  # run "$@" with its output in $LOG; on failure show what went wrong and stop
    if ! "$@" >>"$LOG" 2>&1; then
        echo "setup.sh: failed: $*" >&2
        tail -n 30 "$LOG" >&2
        echo "setup.sh: the full log is $LOG" >&2
        exit 1
    fi
}

mkdir -p .venv
: >"$LOG"
[ -x .venv/bin/python ] || step "$PY" -m venv .venv
step .venv/bin/python -m pip install --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    step .venv/bin/python -m pip install torch==2.13.0
fi
step .venv/bin/python -m pip install -e '.[dev]'
echo "setup.sh: .venv ready ($(.venv/bin/python -c 'import torch, flwr; print(f"torch {torch.__version__}, flwr {flwr.__version__}")')); log in $LOG"
