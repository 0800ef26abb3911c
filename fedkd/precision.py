"""``run.precision``: ``fp32`` (the default) or ``bf16`` autocast of the forward passes that train.

``bf16`` runs the forward passes of the students and of the diffusion prior under
``torch.autocast(device_type="cuda", dtype=torch.bfloat16)``: convolutions and matrix products in bfloat16 (half the
memory traffic, the GPU's tensor cores), everything autocast keeps in float32 (softmax, losses) in float32. Where it
applies: the black-box loop's student steps and its answer-store stage (centralized and on the federated server),
AEDM's prior sampling and steering, the clients' local training (``fedkd.train.train_classifier``), the training
steps of both generative kinds (``fedkd.generative.losses.minimise``), and ``fedkd prior train --precision``.
Evaluation and the oracle's answers (``fedkd.oracle``, the clients' answers) stay in fp32, and so does every
loss: callers cast network outputs with ``.float()`` before a loss, so the numbers logged are float32. (The
generative kinds' frozen teachers run inside the training step, so under the same autocast.)

``fp32`` is no context at all (``contextlib.nullcontext``): the default path runs exactly the code it ran before
precision existed, bit for bit. ``bf16`` is refused on any device but CUDA: on the CPU, autocast changes the
numbers (bfloat16 keeps 8 bits of mantissa) and on fedkd's small networks is usually slower than fp32, so it would
only mislead; on ``mps`` it is untested here.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from fedkd.errors import ConfigError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str, device: str, option: str = "run.precision",
                    device_option: str = "run.device") -> None:
    """Raise a ConfigError unless ``precision`` is one of :data:`PRECISIONS` and may run on ``device``.

    ``device`` ``auto`` passes (it is checked again once resolved); ``option`` and ``device_option`` name where
    the values came from (``run.precision``/``run.device``, ``--precision``/``--device``) in the error.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"{option} = {precision!r} is not a precision; choose one of {list(PRECISIONS)}")
    if precision == "bf16" and not (device == "auto" or device.startswith("cuda")):
        raise ConfigError(f"{option} = 'bf16' needs a CUDA device, got {device_option} = {device!r}: bf16 autocast "
                          f"there changes the numbers and is usually slower than fp32; use 'fp32' on {device!r}, "
                          f"'bf16' only with cuda or cuda:N")


def autocast(precision: str, device: str | torch.device) -> contextlib.AbstractContextManager:
    """The context the forward passes of ``precision`` run in on ``device``: nothing for ``fp32``.

    Checked as :func:`check_precision` checks a config, so a library caller gets the same error."""
    check_precision(precision, str(device))
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
