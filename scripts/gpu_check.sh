#!/usr/bin/env bash
# Check fedkd on a CUDA GPU: the `gpu` tests (each kind briefly on cuda vs the CPU, and run.precision = "bf16" vs
# fp32 on cuda), then the CPU-vs-GPU timing table (with a cuda-bf16 column) of every shipped config at a reduced
# budget. Run in the repository root of a machine with a GPU, after
# scripts/setup.sh (or with a CUDA torch in .venv). Writes benchmarks/results/gpu_check_tests.txt,
# device_timing.csv and device_timing.md; commit them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1 RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1
"$PY" - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"gpu_check.sh: torch {torch.__version__} sees no CUDA device here; run it on a GPU machine "
             "with a CUDA build of torch")
print(f"gpu_check.sh: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
PY
mkdir -p benchmarks/results
set +e
"$PY" -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider 2>&1 | tee benchmarks/results/gpu_check_tests.txt
tests=${PIPESTATUS[0]}
set -e
"$PY" benchmarks/device_timing.py "$@"
cat benchmarks/results/device_timing.md
exit "$tests"
