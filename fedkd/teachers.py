"""Saved, versioned teachers: a classifier's weights plus the metadata that says exactly what it is.

Every black-box benchmark starts from a teacher on disk rather than one trained on the fly, so runs on
different days and machines query the same function. A teacher directory holds

* ``model.safetensors``: the weights;
* ``teacher.json``: dataset, model name, seed, the train/test split (``test_fraction``, ``split_seed``),
  image shape, training settings, the test accuracy it reached, the fedkd version that trained it, and
  the SHA-256 of the weights file.

Loading checks all of it (files present, checksum, model rebuilt and weights loaded strictly, the
dataset the caller expects) and fails with a ``ConfigError`` that says which part is wrong. The student
of a distillation run is evaluated on the teacher's test split, which the teacher never trained on
and the distiller never sees: ``teacher_splits(info)`` rebuilds both splits.

>>> teacher = load_teacher("teachers/digits28-lenet5")                      # doctest: +SKIP
>>> teacher.info.test_acc, teacher.model(torch.zeros(1, 1, 28, 28)).shape   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from fedkd.errors import ConfigError

if TYPE_CHECKING:
    from fedkd.data import ImageDataset

WEIGHTS_FILE = "model.safetensors"
INFO_FILE = "teacher.json"


@dataclass(frozen=True)
class TeacherInfo:
    """What ``teacher.json`` records about a saved teacher."""

    dataset: str
    model: str
    seed: int
    test_fraction: float
    split_seed: int
    n_classes: int
    channels: int
    image_size: int
    test_acc: float
    fedkd_version: str
    training: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str = ""


@dataclass(frozen=True)
class Teacher:
    """A loaded teacher: the classifier (eval mode) and its metadata."""

    model: nn.Module
    info: TeacherInfo


def fedkd_version() -> str:
    try:
        return version("fedkd")
    except PackageNotFoundError:
        return "unknown"


def teacher_splits(info: TeacherInfo, path: str | None = None) -> tuple[ImageDataset, ImageDataset]:
    """The (train, test) split the teacher was trained and measured on."""
    from fedkd.data import load_dataset

    return load_dataset(info.dataset, path or None).split(info.test_fraction, info.split_seed)


def train_teacher(
    dataset: str,
    model: str,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    epochs: int = 20,
    batch_size: int = 128,
    lr: float = 1e-3,
    augment: bool = True,
    data_path: str | None = None,
    device: str = "cpu",
) -> Teacher:
    """Train ``model`` on ``device`` on the train split of ``dataset`` (Adam, cross-entropy) and measure it on the
    test split."""
    from fedkd.data import load_dataset
    from fedkd.models import build_classifier
    from fedkd.seeding import seed_torch, torch_generator
    from fedkd.train import evaluate_accuracy, train_classifier

    data = load_dataset(dataset, data_path or None)
    info = TeacherInfo(dataset=dataset, model=model, seed=seed, test_fraction=test_fraction, split_seed=seed,
                       n_classes=data.n_classes, channels=data.channels, image_size=data.image_size, test_acc=0.0,
                       fedkd_version=fedkd_version(),
                       training={"epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": "adam",
                                 "augment": augment})
    train, test = data.split(test_fraction, info.split_seed)
    seed_torch(seed, "teacher", "init")
    net = build_classifier(model, data.channels, data.image_size, data.n_classes).to(device)
    x, y = train.tensors(device)
    train_classifier(net, x, y, epochs=epochs, batch_size=batch_size, lr=lr, augment=augment,
                     generator=torch_generator(seed, "teacher", "train", device=device))
    net.eval()
    acc = evaluate_accuracy(net, *test.tensors(device))
    return Teacher(net, dataclasses.replace(info, test_acc=round(acc, 6)))


def save_teacher(teacher: Teacher, out: str | Path) -> Path:
    """Write ``out/model.safetensors`` and ``out/teacher.json`` (with the weights' checksum); returns ``out``."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / WEIGHTS_FILE
    save_file({k: v.detach().cpu().contiguous() for k, v in teacher.model.state_dict().items()}, str(weights))
    info = dataclasses.replace(teacher.info, weights_sha256=_sha256(weights))
    (out / INFO_FILE).write_text(json.dumps(dataclasses.asdict(info), indent=2) + "\n")
    return out


def load_teacher(path: str | Path, *, dataset: str | None = None) -> Teacher:
    """The teacher saved at ``path``, checked against its metadata (and against ``dataset`` when given)."""
    from safetensors.torch import load_file

    from fedkd.models import build_classifier

    path = Path(path)
    info_path, weights = path / INFO_FILE, path / WEIGHTS_FILE
    for required in (info_path, weights):
        if not required.is_file():
            raise ConfigError(f"teacher {str(path)!r} is missing {required.name}; train one with "
                              f"`fedkd teacher train --dataset NAME --model NAME --out {path}`")
    info = _read_info(info_path)
    if _sha256(weights) != info.weights_sha256:
        raise ConfigError(f"teacher {str(path)!r}: {WEIGHTS_FILE} does not match the checksum in {INFO_FILE}; "
                          "the weights were changed or belong to another teacher")
    if dataset is not None and dataset != info.dataset:
        raise ConfigError(f"teacher {str(path)!r} was trained on {info.dataset!r}, not on {dataset!r}")
    model = build_classifier(info.model, info.channels, info.image_size, info.n_classes)
    try:
        model.load_state_dict(load_file(str(weights)))
    except RuntimeError as err:
        raise ConfigError(f"teacher {str(path)!r}: weights do not fit a {info.model!r} "
                          f"({info.channels}x{info.image_size}x{info.image_size}, {info.n_classes} classes): "
                          f"{str(err).splitlines()[0]}") from err
    model.eval()
    return Teacher(model, info)


def _read_info(info_path: Path) -> TeacherInfo:
    try:
        raw = json.loads(info_path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{str(info_path)!r} is not valid JSON: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{str(info_path)!r} is not a teacher metadata file: expected a JSON object")
    names = {f.name for f in dataclasses.fields(TeacherInfo)}
    missing = sorted(names - set(raw) - {"training"})
    unknown = sorted(set(raw) - names)
    if missing or unknown:
        raise ConfigError(f"{str(info_path)!r} is not a teacher metadata file: missing {missing}, unknown {unknown}")
    return TeacherInfo(**raw)


def _sha256(file: Path) -> str:
    return hashlib.sha256(file.read_bytes()).hexdigest()
