"""Saved teachers: round trip, metadata checks that fail clearly, the shipped teachers, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from fedkd.cli import main
from fedkd.errors import ConfigError
from fedkd.generative.artifacts import resolve_path
from fedkd.teachers import load_teacher, save_teacher, teacher_splits, train_teacher
from fedkd.train import evaluate_accuracy


@pytest.fixture(scope="module")
def saved_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    teacher = train_teacher("digits", "mlp", seed=3, epochs=3, batch_size=64, augment=False)
    return save_teacher(teacher, tmp_path_factory.mktemp("teachers") / "digits-mlp")


def test_round_trip_keeps_weights_and_metadata(saved_teacher: Path) -> None:
    teacher = load_teacher(saved_teacher, dataset="digits")
    info = teacher.info
    assert (info.dataset, info.model, info.seed) == ("digits", "mlp", 3)
    assert (info.n_classes, info.channels, info.image_size) == (10, 1, 8)
    assert info.fedkd_version and len(info.weights_sha256) == 64 and info.training["epochs"] == 3
    _, test = teacher_splits(info)
    assert evaluate_accuracy(teacher.model, *test.tensors()) == pytest.approx(info.test_acc, abs=1e-6)
    assert info.test_acc > 0.8
    assert not teacher.model.training


def test_loading_checks_files_checksum_and_dataset(saved_teacher: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="trained on 'digits', not on 'mnist5k'"):
        load_teacher(saved_teacher, dataset="mnist5k")

    missing = tmp_path / "missing"
    shutil.copytree(saved_teacher, missing)
    (missing / "teacher.json").unlink()
    with pytest.raises(ConfigError, match="missing teacher.json; train one with `fedkd teacher train"):
        load_teacher(missing)

    tampered = tmp_path / "tampered"
    shutil.copytree(saved_teacher, tampered)
    other = train_teacher("digits", "mlp", seed=4, epochs=1, augment=False)
    save_teacher(other, tmp_path / "other")
    shutil.copy(tmp_path / "other" / "model.safetensors", tampered / "model.safetensors")
    with pytest.raises(ConfigError, match="does not match the checksum"):
        load_teacher(tampered)

    wrong_model = tmp_path / "wrong-model"
    shutil.copytree(saved_teacher, wrong_model)
    meta = json.loads((wrong_model / "teacher.json").read_text())
    (wrong_model / "teacher.json").write_text(json.dumps({**meta, "model": "lenet5"}))
    with pytest.raises(ConfigError, match="weights do not fit a 'lenet5'"):
        load_teacher(wrong_model)

    (wrong_model / "teacher.json").write_text(json.dumps({"dataset": "digits"}))
    with pytest.raises(ConfigError, match="not a teacher metadata file: missing"):
        load_teacher(wrong_model)


@pytest.mark.parametrize("name", ["mnist5k-lenet5", "digits28-lenet5"])
def test_shipped_teachers_load_and_keep_their_recorded_accuracy(name: str) -> None:
    teacher = load_teacher(resolve_path(f"teachers/{name}"))
    info = teacher.info
    assert (info.model, info.channels, info.image_size) == ("lenet5", 1, 28)
    _, test = teacher_splits(info)
    assert evaluate_accuracy(teacher.model, *test.tensors()) == pytest.approx(info.test_acc, abs=1e-6)
    assert info.test_acc > 0.95
    assert (resolve_path(f"teachers/{name}") / "model.safetensors").stat().st_size < 400_000


PANELS = ("mnist5k", "digits28")
PANEL = sorted(p.parent.name for dataset in PANELS for p in resolve_path("teachers").glob(f"{dataset}-*/teacher.json"))


@pytest.mark.parametrize("name", PANEL)
def test_the_teacher_panel_loads_and_keeps_its_recorded_accuracy(name: str) -> None:
    """The panels of ``teachers/README.md``: four architectures, two seeds each, all above 0.92 on their dataset."""
    dataset = name.split("-")[0]
    teacher = load_teacher(resolve_path(f"teachers/{name}"), dataset=dataset)
    _, test = teacher_splits(teacher.info)
    assert evaluate_accuracy(teacher.model, *test.tensors()) == pytest.approx(teacher.info.test_acc, abs=1e-6)
    assert teacher.info.test_acc > 0.92
    assert (resolve_path(f"teachers/{name}") / "model.safetensors").stat().st_size < 1_300_000


@pytest.mark.parametrize("dataset", PANELS)
def test_each_panel_has_four_architectures_with_two_seeds_each(dataset: str) -> None:
    panel = [load_teacher(resolve_path(f"teachers/{name}")).info for name in PANEL if name.startswith(f"{dataset}-")]
    assert {info.dataset for info in panel} == {dataset}
    models = {(info.model, info.seed) for info in panel}
    assert models == {(m, s) for m in ("lenet5", "resnet8", "vgg_small", "mlp") for s in (0, 1)}


def test_cli_trains_and_shows_a_teacher(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t"
    assert main(["teacher", "train", "--dataset", "digits", "--model", "mlp", "--epochs", "1", "--out", str(out)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert main(["teacher", "show", str(out)]) == 0
    assert "digits" in capsys.readouterr().out
    assert main(["teacher", "show", str(tmp_path / "nothing")]) == 2
    assert "missing teacher.json" in capsys.readouterr().err
    assert torch.get_num_threads() == 1  # the CLI left the test's thread setting alone
