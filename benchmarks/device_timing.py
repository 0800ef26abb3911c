"""CPU vs GPU seconds for each shipped config at a reduced budget (run by ``scripts/gpu_check.sh``).

Every config in ``simulations/`` runs once on ``cpu``, once on ``cuda`` and once on ``cuda-bf16`` (``cuda`` with
``run.precision = "bf16"``) with the same seed and the reductions in ``REDUCED`` (fewer queries, steps, samples or
rounds, so the whole table takes minutes), as a plain ``fedkd.run``. Federated runs on ``cuda`` also get
``federation.client_gpus = 1 / num_clients`` (Ray's fractional GPUs: the clients share one GPU). The seconds are
wall time of the whole run (start-up included).
The headline metric of each run is reported beside its time, so a GPU run that silently did less shows.

    python benchmarks/device_timing.py [--only NAME ...] [--devices cpu cuda cuda-bf16]

Writes ``benchmarks/results/device_timing.csv`` and ``device_timing.md``. Needs a CUDA device for ``cuda``.
"""

from __future__ import annotations

import argparse
import math
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

import fedkd
from fedkd.config import load_config

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
_FEDERATED = {"federation.num_rounds": 3}
_TANDEM = {"distill.budget": 100_000, "distill.eval_every": 20_000, "distill.checkpoint_every": 100_000}
REDUCED: dict[str, dict[str, object]] = {
    "tandemgan_digits28": _TANDEM,
    "tandemgan_mnist": _TANDEM,
    "aedm_mnist": {"distill.budget": 20_000, "distill.eval_every": 10_000},
    "dark_knowledge": {"distill.steps": 300, "eval.samples": 500},
    "dark_knowledge28": {"distill.steps": 100, "eval.samples": 500},
    "single_fold": {"distill.steps_per_halving": 100, "eval.samples": 200},
    "quickstart": _FEDERATED,
    "fed_avg": _FEDERATED,
    "crowd_fedavg": _FEDERATED,
    "fed_df": {**_FEDERATED, "distill.budget": 30_000},
    "fed_tandem": {**_FEDERATED, "distill.budget": 30_000},
    "fed_aedm": {**_FEDERATED, "distill.budget": 6_000},
}
HEADLINE = ("test_acc", "fid_like/dark_knowledge", "fid_like/single_fold@8")


def overrides_for(name: str, variant: str) -> dict[str, object]:
    """The reductions of ``name`` on ``variant``, a device optionally followed by ``-bf16`` (its precision); a
    federated run on a GPU shares it among its clients."""
    device, _, precision = variant.partition("-")
    overrides = {**REDUCED[name], "run.device": device, "run.precision": precision or "fp32"}
    cfg = load_config(ROOT / "simulations" / f"{name}.toml", overrides)
    if cfg.run.kind == "federated" and device != "cpu":
        overrides["federation.client_gpus"] = 1 / cfg.federation.num_clients
    return overrides


def headline(metrics: pd.DataFrame) -> tuple[str, float]:
    """The first of ``HEADLINE`` the run logged, with its last value."""
    for name in HEADLINE:
        rows = metrics[metrics["metric"] == name]
        if len(rows):
            return name, float(rows["value"].iloc[-1])
    return "", math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=sorted(REDUCED), choices=sorted(REDUCED), metavar="NAME")
    parser.add_argument("--devices", nargs="*", default=["cpu", "cuda", "cuda-bf16"])
    args = parser.parse_args()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            for device in args.devices:
                start = time.perf_counter()
                result = fedkd.run(ROOT / "simulations" / f"{name}.toml", overrides=overrides_for(name, device),
                                   out=Path(tmp) / f"{name}-{device}")
                seconds = time.perf_counter() - start
                metric, value = headline(result.metrics)
                rows.append({"config": name, "device": device, "seconds": round(seconds, 1), "metric": metric,
                             "value": value, "reduced": ", ".join(f"{k}={v}" for k, v in REDUCED[name].items()),
                             "gpu": gpu, "cpu": platform.processor() or platform.machine(),
                             "torch": torch.__version__})
                print(f"{name} on {device}: {seconds:.1f} s, {metric} {value:.4f}", flush=True)
    table = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / "device_timing.csv", index=False)
    wide = table.pivot(index="config", columns="device", values="seconds")
    if {"cpu", "cuda"} <= set(wide.columns):
        wide["speed-up"] = (wide["cpu"] / wide["cuda"]).round(2)
    if {"cuda", "cuda-bf16"} <= set(wide.columns):
        wide["bf16 speed-up"] = (wide["cuda"] / wide["cuda-bf16"]).round(2)
    lines = ["| config | " + " | ".join(wide.columns) + " |", "|---" * (len(wide.columns) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(str(v) for v in row) + " |" for name, row in wide.iterrows()]
    (RESULTS / "device_timing.md").write_text(
        f"Wall seconds per shipped config at a reduced budget (seed 0, one run each; GPU: {gpu}, "
        f"torch {torch.__version__}; cuda-bf16: run.precision = bf16). Written by "
        f"`python benchmarks/device_timing.py`.\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
