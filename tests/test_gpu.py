"""Each kind briefly on ``cuda``, compared with the same run on the CPU (marker ``gpu``; skipped without CUDA).

A CUDA generator draws other numbers than a CPU generator from the same seed, so the two runs take different
noise and their students differ. What must agree: the metrics that do not depend on the streams (the teacher's
accuracy; FID-like, precision and recall of the teachers' samples, whose evaluation noise is drawn on the CPU
and moved), within ``TOLERANCE``; and every other metric must be logged at the same steps and be finite.
``scripts/gpu_check.sh`` runs these and the timing table on a GPU machine.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from device_runs import SHORT_RUNS

import fedkd

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="no CUDA device on this machine: the gpu tests compare cuda runs with the CPU; "
                              "run scripts/gpu_check.sh on a machine with a GPU"),
]
TIMING = ("seconds/", "queries_per_second", "student_steps_per_second", "train_seconds/", "sample_ms_per_image/")
# metric prefix -> (absolute tolerance, relative tolerance) between the CPU and the CUDA run
TOLERANCE = {"teacher_acc": (0.002, 0.0), "fid_like/teacher": (0.0, 0.02), "precision/teacher": (0.01, 0.0),
             "recall/teacher": (0.01, 0.0), "class_acc/teacher": (0.002, 0.0)}


def _tolerance(metric: str) -> tuple[float, float] | None:
    return next((tol for prefix, tol in TOLERANCE.items() if metric.startswith(prefix)), None)


def _rows(metrics: pd.DataFrame) -> pd.DataFrame:
    kept = metrics[~metrics["metric"].str.startswith(TIMING)]
    return kept.drop(columns=[c for c in ("time", "wall", "seconds") if c in kept.columns])


@pytest.mark.parametrize("name", sorted(SHORT_RUNS))
def test_a_short_run_on_cuda_agrees_with_the_cpu_run(tmp_path: Path, name: str) -> None:
    config, overrides = SHORT_RUNS[name]
    cpu = _rows(fedkd.run(config, overrides={**overrides, "run.device": "cpu"}, out=tmp_path / "cpu").metrics)
    cuda = _rows(fedkd.run(config, overrides={**overrides, "run.device": "cuda"}, out=tmp_path / "cuda").metrics)
    keys = [c for c in cpu.columns if c != "value"]
    assert cpu[keys].reset_index(drop=True).equals(cuda[keys].reset_index(drop=True)), "logged at different steps"
    for (metric, a), b in zip(zip(cpu["metric"], cpu["value"], strict=True), cuda["value"], strict=True):
        assert math.isfinite(b), f"{metric} is {b} on cuda"
        tol = _tolerance(metric)
        if tol is not None:
            assert b == pytest.approx(a, abs=tol[0], rel=tol[1]), f"{metric}: cpu {a}, cuda {b}"

