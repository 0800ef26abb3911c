"""Each kind briefly on ``cuda``, compared with the same run on the CPU (marker ``gpu``; skipped without CUDA).

A CUDA generator draws other numbers than a CPU generator from the same seed, so the two runs take different
noise and their students differ. What must agree: the metrics that do not depend on the streams (the teacher's
accuracy; FID-like, precision and recall of the teachers' samples, whose evaluation noise is drawn on the CPU
and moved), within ``TOLERANCE``; and every other metric must be logged at the same steps and be finite.
``run.precision = "bf16"`` is checked against fp32 on cuda, where both runs draw the same streams: the same rows,
every value finite, and the values within ``BF16_TOLERANCE``. Those tolerances are about ten times the largest gap
that torch's CPU bf16 autocast gives on the same short runs (fedkd refuses bf16 on the CPU; the gaps were measured
with that check patched out: train losses within 0.5 %, FID-like within 1.5 %, accuracies within 0.03, the prior's
8-step decode 0.031 mean absolute pixel difference, LeNet-5 logits 0.5 % of their largest), loose enough for other
kernels and tight enough that a wrong cast or a NaN shows.
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


# metric prefix -> (absolute, relative) tolerance between an fp32 and a bf16 run on cuda (the teachers' own
# metrics do not depend on the students' precision: TOLERANCE applies to them)
BF16_TOLERANCE = {"train_loss": (0.0, 0.05), "fid_like/": (0.0, 0.15), "test_acc": (0.1, 0.0),
                  "fidelity": (0.1, 0.0)}
BF16_RUNS = ("tandemgan-label", "aedm-steered", "dark_knowledge", "single_fold")


def _tolerance(metric: str, tolerances: dict[str, tuple[float, float]] = TOLERANCE) -> tuple[float, float] | None:
    return next((tol for prefix, tol in tolerances.items() if metric.startswith(prefix)), None)


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



@pytest.mark.parametrize("name", BF16_RUNS)
def test_a_short_bf16_run_on_cuda_agrees_with_fp32(tmp_path: Path, name: str) -> None:
    config, overrides = SHORT_RUNS[name]
    runs = {precision: _rows(fedkd.run(config, overrides={**overrides, "run.device": "cuda",
                                                          "run.precision": precision},
                                       out=tmp_path / precision).metrics) for precision in ("fp32", "bf16")}
    fp32, bf16 = runs["fp32"], runs["bf16"]
    keys = [c for c in fp32.columns if c != "value"]
    assert fp32[keys].reset_index(drop=True).equals(bf16[keys].reset_index(drop=True)), "logged at different steps"
    for (metric, a), b in zip(zip(fp32["metric"], fp32["value"], strict=True), bf16["value"], strict=True):
        assert math.isfinite(b), f"{metric} is {b} in bf16"
        tol = _tolerance(metric) if "teacher" in metric else _tolerance(metric, BF16_TOLERANCE)
        if tol is not None:
            assert b == pytest.approx(a, abs=tol[0], rel=tol[1]), f"{metric}: fp32 {a}, bf16 {b}"


def test_bf16_forward_passes_on_cuda_are_close_to_fp32() -> None:
    from fedkd.models import build_classifier
    from fedkd.models.diffusion import load_prior
    from fedkd.precision import autocast
    from fedkd.seeding import torch_generator

    torch.manual_seed(0)
    student = build_classifier("lenet5", 1, 28, 10).cuda()
    x = torch.rand(256, 1, 28, 28, generator=torch_generator(0, "x")).cuda() * 2 - 1
    with torch.no_grad():
        reference = student(x)
        with autocast("bf16", "cuda"):
            low = student(x)
    assert low.dtype == torch.bfloat16
    assert float((reference - low.float()).abs().max()) <= 0.05 * float(reference.abs().max())
    prior = load_prior(Path(__file__).resolve().parents[1] / "pretrained" / "prior-digits").cuda().eval()
    x_T = torch.randn(64, 1, prior.config.image_size, prior.config.image_size,
                      generator=torch_generator(0, "x_T")).cuda()
    with torch.no_grad():
        images = prior.sample(x_T, steps=8)
        with autocast("bf16", "cuda"):
            low_images = prior.sample(x_T, steps=8).float()
    assert torch.isfinite(low_images).all()
    assert float((images - low_images).abs().mean()) <= 0.15
