"""One short run of each experiment kind and method: what the device tests run on every device they check.

Each entry is ``(config, overrides)`` for ``fedkd.run``: the shipped config cut to a few seconds on a CPU.
``scripts/gpu_check.sh`` times the same shipped configs at a larger (still reduced) budget.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIM = ROOT / "simulations"
_BLACKBOX = {"distill.budget": 2_560, "distill.eval_every": 1_280, "distill.checkpoint_every": 1_280}
_AEDM = {"distill.budget": 128, "distill.batch_size": 32, "distill.eval_every": 64, "distill.checkpoint_every": 64,
         "aedm.sampling_steps": 2, "aedm.offline_epochs": 1, "aedm.offline_max_steps": 2}

SHORT_RUNS: dict[str, tuple[Path, dict[str, object]]] = {
    "tandemgan-label": (SIM / "tandemgan_digits28.toml", _BLACKBOX),
    "tandemgan-proba": (SIM / "tandemgan_digits28.toml", {**_BLACKBOX, "distill.mode": "proba"}),
    "dfme-proba": (SIM / "tandemgan_digits28.toml", {**_BLACKBOX, "distill.method": "dfme", "distill.mode": "proba"}),
    "random": (SIM / "tandemgan_digits28.toml", {**_BLACKBOX, "distill.method": "random"}),
    "real": (SIM / "tandemgan_digits28.toml", {**_BLACKBOX, "distill.method": "real"}),
    "aedm-plain": (SIM / "aedm_mnist.toml", _AEDM),
    "aedm-steered": (SIM / "aedm_mnist.toml", {**_AEDM, "aedm.steer": True, "aedm.steer_steps": 1,
                                               "aedm.grad_last_k": 1}),
    "dark_knowledge": (SIM / "dark_knowledge.toml", {"distill.steps": 4, "eval.samples": 40, "eval.log_every": 2}),
    "single_fold": (SIM / "single_fold.toml", {"student.steps": [16, 8], "distill.steps_per_halving": 2,
                                               "eval.samples": 20, "eval.teacher_steps": [8],
                                               "eval.log_every": 2}),
}
