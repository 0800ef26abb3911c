"""``run.device``: which names a config may give, and what they mean on this machine.

A config names ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto`` (CUDA when this machine has it, else the
CPU). The spelling is checked when the config loads (no torch import); whether the machine has the device is
checked when a run starts, before anything is written or launched, and the error names the devices it has.
"""

from __future__ import annotations

import argparse
import re

from fedkd.errors import ConfigError

DEVICE_NAMES = ("cpu", "cuda", "cuda:N", "mps", "auto")
_PATTERN = re.compile(r"cpu|cuda(:\d+)?|mps|auto")


def check_device_name(device: str, option: str = "run.device") -> None:
    """Raise a ConfigError unless ``device`` is one of :data:`DEVICE_NAMES`; ``option`` names where it was given."""
    if not _PATTERN.fullmatch(device):
        raise ConfigError(f"{option} = {device!r} is not a device name; choose one of {list(DEVICE_NAMES)}")


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """The ``--device`` option of the training commands (checked by :func:`resolve_device` when the command runs)."""
    parser.add_argument("--device", default="cpu",
                        help=f"where to train: {', '.join(DEVICE_NAMES)} (default cpu; auto = cuda if present)")


def available_devices() -> list[str]:
    """The devices torch can use here, e.g. ``["cpu", "cuda:0", "cuda:1"]``."""
    import torch

    devices = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def resolve_device(device: str, option: str = "run.device") -> str:
    """``device`` as torch should see it on this machine (``auto`` decided); a ConfigError if it is not here.

    ``option`` names where the value came from (``run.device``, ``--device``) in the error.
    """
    check_device_name(device, option)
    here = available_devices()
    if device == "auto":
        return "cuda" if "cuda:0" in here else "cpu"
    wanted = "cuda:0" if device == "cuda" else device
    if wanted not in here:
        raise ConfigError(f"{option} = {device!r} is not available on this machine; it has {here}")
    return device
