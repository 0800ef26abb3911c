#!/usr/bin/env bash
# Create .venv and install fedkd with its dev extras, CPU torch first so no CUDA build is pulled.
# A user with a GPU who already has torch in the active environment can run: pip install -e '.[dev]'
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -d .venv ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/python -m pip install -q torch==2.13.0
fi
.venv/bin/python -m pip install -q -e '.[dev]'
