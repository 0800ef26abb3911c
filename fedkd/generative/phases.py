"""Checkpoints of the generative runs, one per finished phase, so ``--resume`` skips what is already done.

A generative run is a short list of independent phases: the teacher's evaluation, then one student per
variant (each from its own seeded initialisation and its own input stream), then, for ``single_fold``, the
progressive chain. Every row a phase logs carries ``round = phase``; after a phase the run saves a
checkpoint at that round holding the weights of every student finished so far. ``RunDir`` rolls
``metrics.csv`` back to the rows of the last complete checkpoint on resume, the run reloads the finished
students (for the sample grid) and starts again at the first unfinished phase. A phase depends on
nothing another phase left behind, so the resumed run ends with the same metrics as an uninterrupted
one; an interrupted phase is redone from its start.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from fedkd.runs import RunDir


class PhaseCheckpoints:
    """Which phases of a run are finished, and the student weights they left (``name.param`` keys)."""

    def __init__(self, rundir: RunDir) -> None:
        self.rundir = rundir
        checkpoint = rundir.load_checkpoint()
        self.finished = 0 if checkpoint is None else checkpoint.round + 1
        self.complete = checkpoint is not None and bool(checkpoint.state.get("complete"))
        self.tensors: dict[str, torch.Tensor] = {} if checkpoint is None else dict(checkpoint.tensors)

    def is_done(self, phase: int) -> bool:
        return phase < self.finished

    def weights(self, name: str) -> dict[str, torch.Tensor]:
        """The state dict saved for student ``name`` by :meth:`finish`."""
        prefix = f"{name}."
        return {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}

    def finish(self, phase: int, students: Mapping[str, torch.nn.Module] | None = None, *,
               complete: bool = False) -> None:
        """Record ``phase`` as finished, with the weights of the ``students`` it trained."""
        for name, model in (students or {}).items():
            self.tensors.update({f"{name}.{k}": v.detach().clone() for k, v in model.state_dict().items()})
        self.rundir.save_checkpoint(self.tensors, {"complete": complete}, round=phase)
        self.finished, self.complete = phase + 1, complete
