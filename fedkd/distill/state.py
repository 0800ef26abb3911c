"""Nested training state (optimizer states, RNG states) <-> flat tensors + a JSON skeleton for safetensors checkpoints.

A checkpoint must restore a run exactly, so it holds more than weights: optimizer moments and the
states of the random generators. Those are nested dicts with integer keys and tensors inside;
safetensors stores only a flat ``name -> tensor`` map. ``flatten`` moves every tensor into that map
under a path-like name and leaves a JSON-safe skeleton that records where each came from (dicts are
stored as ``[key, value]`` pairs, so integer keys stay integers); ``unflatten`` reverses it.
"""

from __future__ import annotations

from typing import Any

import torch


def flatten(obj: Any, prefix: str) -> tuple[dict[str, torch.Tensor], Any]:
    """``(tensors, skeleton)``: every tensor of ``obj`` under a name starting with ``prefix``."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, torch.Tensor):
            tensors[path] = value.detach().clone().contiguous()
            return {"tensor": path}
        if isinstance(value, dict):
            return {"dict": [[key, walk(item, f"{path}/{key}")] for key, item in value.items()]}
        if isinstance(value, (list, tuple)):
            return {"list": [walk(item, f"{path}/{i}") for i, item in enumerate(value)]}
        return {"value": value}

    return tensors, walk(obj, prefix)


def unflatten(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The object ``flatten`` took apart."""
    if "tensor" in skeleton:
        return tensors[skeleton["tensor"]]
    if "dict" in skeleton:
        return {key: unflatten(item, tensors) for key, item in skeleton["dict"]}
    if "list" in skeleton:
        return [unflatten(item, tensors) for item in skeleton["list"]]
    return skeleton["value"]
