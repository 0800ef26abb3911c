"""Shipped generative models on disk: weights plus the metadata that says exactly how to rebuild them.

A model directory holds ``model.safetensors`` and ``meta.json``. The metadata records the ``kind`` of
model, the architecture needed to rebuild it, the command, dataset and seed that reproduce it, and the
SHA-256 of the weights. Loading refuses a missing file, a changed weights file, another kind of model
or metadata that disagrees with what the caller expects, each with a ``ConfigError`` naming the problem,
so a config never runs silently against the wrong model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from fedkd.errors import ConfigError

WEIGHTS_FILE = "model.safetensors"
META_FILE = "meta.json"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Where teachers/ and pretrained/ are: beside fedkd/ in a checkout, inside it once installed (pyproject.toml
# maps them to the fedkd.shipped.* packages).
SHIPPED_ROOTS = (PROJECT_ROOT, Path(__file__).resolve().parents[1] / "shipped")


@dataclass(frozen=True)
class Provenance:
    """How a saved model was made: the command, dataset and seed that reproduce it, and training facts."""

    command: str
    dataset: str
    seed: int
    training: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_path(path: str | Path) -> Path:
    """``path`` as given when it exists, else the shipped copy of it (``pretrained/...``, ``teachers/...``): in a
    checkout the project folder, in an installed fedkd the package data under ``fedkd/shipped/``."""
    path = Path(path)
    if path.exists() or path.is_absolute():
        return path
    for root in SHIPPED_ROOTS:
        if (root / path).exists():
            return root / path
    return path


def save_model(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any], out: str | Path) -> Path:
    """Write ``out/model.safetensors`` and ``out/meta.json`` (with the weights' checksum added); returns ``out``."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / WEIGHTS_FILE
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(weights))
    payload = {**meta, "weights_sha256": _sha256(weights)}
    (out / META_FILE).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return out


def load_model(path: str | Path, kind: str, expect: Mapping[str, Any] | None = None,
               how_to_train: str = "") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, metadata) of the ``kind`` model at ``path``, after checking files, checksum and ``expect``.

    ``expect`` maps metadata keys to the values the caller needs (``{"dataset": "digits", "image_size": 8}``);
    ``how_to_train`` is the command the error messages suggest when the model is missing.
    """
    from safetensors.torch import load_file

    path = resolve_path(path)
    hint = f"; train one with `{how_to_train}`" if how_to_train else ""
    for required in (path / META_FILE, path / WEIGHTS_FILE):
        if not required.is_file():
            raise ConfigError(f"{kind} {str(path)!r} is missing {required.name}{hint}")
    try:
        meta = json.loads((path / META_FILE).read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{kind} {str(path)!r}: {META_FILE} is not valid JSON ({err})") from None
    if meta.get("kind") != kind:
        raise ConfigError(f"{str(path)!r} holds a {meta.get('kind')!r}, not a {kind!r}")
    if _sha256(path / WEIGHTS_FILE) != meta.get("weights_sha256"):
        raise ConfigError(f"{kind} {str(path)!r}: {WEIGHTS_FILE} does not match the checksum in {META_FILE}; "
                          "the weights were changed or belong to another model")
    for key, wanted in (expect or {}).items():
        if key not in meta:
            raise ConfigError(f"{kind} {str(path)!r}: {META_FILE} records no {key!r} (expected {wanted!r})")
        if meta[key] != wanted:
            raise ConfigError(f"{kind} {str(path)!r} has {key} = {meta[key]!r}, but the config expects {wanted!r}")
    return load_file(str(path / WEIGHTS_FILE)), meta


def describe(path: str | Path) -> str:
    """The metadata of the model at ``path`` as indented JSON (what ``fedkd prior show`` and ``gan show`` print)."""
    return json.dumps(json.loads((resolve_path(path) / META_FILE).read_text()), indent=2, sort_keys=True)


def reproducing_command(prefix: str, args: argparse.Namespace, names: tuple[str, ...]) -> str:
    """The command line that reproduces a saved model: ``prefix`` plus ``--name value`` for each of ``names``.

    Boolean options appear as bare flags when set and are left out otherwise.
    """
    parts: list[str] = []
    for name in names:
        value, flag = getattr(args, name), f"--{name.replace('_', '-')}"
        if isinstance(value, bool):
            parts += [flag] if value else []
        else:
            parts += [flag, str(value)]
    return f"{prefix} {shlex.join(parts)}"


def parse_ints(text: str, option: str) -> tuple[int, ...]:
    """``"16,32"`` -> ``(16, 32)``; anything else is a ConfigError naming ``option``."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"{option} must be comma-separated integers like 16,32, got {text!r}") from None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
