"""Every tensor fedkd creates says where it lives, so a forgotten device fails here, on a CPU-only machine.

On a GPU a tensor created on the CPU next to a model on the GPU fails at once; on a CPU-only machine the same
mistake is silent, because every device is the CPU. These tests run one short run of each kind and method
(``device_runs.SHORT_RUNS``) under a ``TorchFunctionMode`` that records each factory call (``randn``,
``zeros``, ``arange``, ...) made directly from fedkd's code without ``device=``: such a tensor lands on the CPU
whatever ``run.device`` says. The few creations meant for the CPU are listed in ``CPU_BY_DESIGN`` with why.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from device_runs import SHORT_RUNS
from torch.overrides import TorchFunctionMode

import fedkd

FACTORIES = {torch.randn, torch.rand, torch.randint, torch.randperm, torch.normal, torch.zeros, torch.ones,
             torch.full, torch.empty, torch.arange, torch.linspace, torch.eye, torch.tensor}
PACKAGE = Path(fedkd.__file__).resolve().parent

# file:function -> why a CPU tensor is right there, whatever run.device says.
CPU_BY_DESIGN = {
    "distill/store.py:add": "the answer store keeps its compact codes and round tags on the CPU; batches move",
    "distill/store.py:answers": "an empty store's answers (no batch is ever drawn from it)",
    "distill/store.py:rounds": "an empty store's round tags",
    "generative/experiment.py:run_dark_knowledge": "evaluation noise and labels are drawn on the CPU, then moved, "
                                                   "so every device measures the same images",
    "generative/experiment.py:run_single_fold": "the evaluation x_T is drawn on the CPU, then moved (as above)",
    "models/classifiers.py:_flat_size": "a dummy input that sizes a layer while the model is built on the CPU",
    "models/diffusion.py:positions_of": "a step-position lookup; callers move it next to the data",
    "models/diffusion.py:__init__": "the noise schedule, moved next to the data where it is used",
    "models/diffusion.py:cosine": "the noise schedule (as above)",
    "models/diffusion.py:fold": "the noise schedule of a folded model (as above)",
    "models/diffusion.py:subsequence": "the noise schedule of a sub-sampled model (as above)",
    "progressive.py:two_step_target": "a 0-dim constant, which torch combines with tensors on any device",
}


class UndeclaredDevices(TorchFunctionMode):
    """Records ``file:function`` of each factory call made directly from fedkd without ``device=``."""

    def __init__(self) -> None:
        super().__init__()
        self.sites: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
        kwargs = kwargs or {}
        if func in FACTORIES and "device" not in kwargs:
            caller = sys._getframe(1)
            path = Path(caller.f_code.co_filename).resolve()
            if path.is_relative_to(PACKAGE):
                self.sites.add(f"{path.relative_to(PACKAGE).as_posix()}:{caller.f_code.co_name}")
        return func(*args, **kwargs)


def _allowed(site: str) -> bool:
    return any(site.endswith(known) for known in CPU_BY_DESIGN)


def test_the_recorder_catches_a_tensor_created_without_a_device() -> None:
    from fedkd.distill.store import AnswerStore

    with UndeclaredDevices() as recorder:
        torch.zeros(3)  # from a test: not fedkd's, not recorded
        torch.zeros(3, device="cpu")
        AnswerStore().answers  # noqa: B018 - an empty store's answers are made in fedkd without a device
    assert recorder.sites == {"distill/store.py:answers"}


@pytest.mark.parametrize("name", sorted(SHORT_RUNS))
def test_every_tensor_a_run_creates_names_its_device(tmp_path: Path, name: str) -> None:
    config, overrides = SHORT_RUNS[name]
    with UndeclaredDevices() as recorder:
        fedkd.run(config, overrides={**overrides, "run.device": "cpu"}, out=tmp_path / name)
    undeclared = sorted(site for site in recorder.sites if not _allowed(site))
    assert not undeclared, f"tensors created without device= (they stay on the CPU on a GPU run): {undeclared}"
