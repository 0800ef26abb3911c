"""Bad inputs to ``fedkd run``: each is one clear line and exit code 2 before anything is spent, and nothing that
was already on disk is lost (a fresh ``--out`` is not even created, so the same command can be retried)."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from fedkd.cli import main
from fedkd.config import load_config
from fedkd.runs import LOCK_FILE, RunDir, _lock_record

ROOT = Path(__file__).resolve().parents[1]
CROWD = str(ROOT / "simulations" / "crowd_fedavg.toml")
SMALL = ["--set", "data.dataset=digits", "--set", "client.model=mlp"]  # the run every existing-run case holds
BLACKBOX = str(ROOT / "simulations" / "tandemgan_digits28.toml")
FED_TANDEM = str(ROOT / "simulations" / "fed_tandem.toml")
FED_AEDM = str(ROOT / "simulations" / "fed_aedm.toml")
FED_DF = str(ROOT / "simulations" / "fed_df.toml")


def existing_run(tmp: Path, *, rows: int = 1, checkpoint: bool = True) -> RunDir:
    """A run of ``crowd_fedavg`` with ``SMALL`` in ``tmp/out`` that measured round 1 (and checkpointed it)."""
    cfg = load_config(CROWD, dict(s.split("=", 1) for s in SMALL[1::2]))
    with RunDir.open(tmp / "out", cfg) as run:
        for i in range(rows):
            run.log("test_acc", 0.5 + i / 100, round=1)
        if checkpoint:
            run.save_checkpoint({"w": torch.ones(100)}, {"test_acc": 0.5, "strategy": {}}, round=1)
    return run


def corrupt_checkpoint(tmp: Path) -> None:
    weights = existing_run(tmp).checkpoint_dir / "ckpt-00000001.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])


def held_by_another_process(tmp: Path) -> None:
    run = existing_run(tmp)
    run.lock_path.write_text(json.dumps(_lock_record(os.getppid())))  # pytest's parent: alive, and not us


def corrupt_prior(tmp: Path) -> None:
    shutil.copytree(ROOT / "pretrained" / "prior-digits", tmp / "prior")
    weights = tmp / "prior" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])


def a_file(tmp: Path) -> None:
    (tmp / "out").write_text("my notes")


@dataclass
class Case:
    args: list[str]
    message: str  # a regex the one error line must match after "fedkd run: error: "
    setup: Callable[[Path], object] | None = None
    out: bool = True  # add --out {tmp}/out
    marks: list[pytest.MarkDecorator] = field(default_factory=list)
    cuda: bool = False  # pretend this machine has cuda:0, for checks that come after run.device's own


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
CASES = {
    # run.device: spelt wrong, or not on this machine (checked before anything is written or started)
    "device-tpu": Case([CROWD, "--set", "run.device=tpu"],
                       r"run.device = 'tpu' is not a device name; choose one of \['cpu', 'cuda', 'cuda:N', 'mps'"),
    "device-misspelt": Case([CROWD, "--set", "run.device=cuda0"], r"run.device = 'cuda0' is not a device name"),
    "device-gpu": Case([BLACKBOX, "--set", "run.device=gpu"], r"run.device = 'gpu' is not a device name"),
    "device-cuda-absent": Case([CROWD, "--set", "run.device=cuda"],
                               r"run.device = 'cuda' is not available on this machine; it has \['cpu'",
                               marks=[NO_CUDA]),
    "device-cuda-index-absent": Case([CROWD, "--set", "run.device=cuda:7"],
                                     r"run.device = 'cuda:7' is not available on this machine; it has \["),
    # run.precision: spelt wrong, or bf16 where autocast would only mislead (auto is decided first)
    "precision-fp16": Case([CROWD, "--set", "run.precision=fp16"],
                           r"run.precision = 'fp16' is not a precision; choose one of \['fp32', 'bf16'\]"),
    "precision-bf16-on-cpu": Case([BLACKBOX, "--set", "run.precision=bf16"],
                                  r"run.precision = 'bf16' needs a CUDA device, got run.device = 'cpu': .* use "
                                  r"'fp32' on 'cpu', 'bf16' only with cuda or cuda:N"),
    "precision-bf16-auto-is-cpu": Case([BLACKBOX, "--set", "run.device=auto", "--set", "run.precision=bf16"],
                                       r"run.precision = 'bf16' needs a CUDA device, got run.device = 'cpu'",
                                       marks=[NO_CUDA]),
    # federated: what the server would only find after Ray's start-up
    "cuda-clients-without-gpus": Case([CROWD, "--set", "run.device=cuda"],
                                      r"federation.client_gpus must be > 0 when run.device = 'cuda' \(got 0.0\): "
                                      r"the clients train on 'cuda' .* e.g. 0.1 for 10 clients on one GPU", cuda=True),
    "generator-for-8x8": Case([FED_TANDEM, "--set", "data.dataset=digits"], r"no generator for 1x8x8 images"),
    "corrupt-aedm-prior": Case([FED_AEDM, "--set", "aedm.prior={tmp}/prior"],
                               r"model.safetensors does not match the checksum", setup=corrupt_prior),
    "query-after-last-round": Case([FED_TANDEM, "--set", "query.first_round=99"],
                                   r"query.first_round = 99 is after the last round"),
    "strategy-method-mismatch": Case([FED_TANDEM, "--set", "distill.method=aedm"],
                                     r"synthesizes queries with 'tandemgan'; set distill.method = 'tandemgan'"),
    "public-box-too-big": Case([FED_DF, "--set", "query.public_box=64"], r"query.public_box must be <= the clients'"),
    "fedavg-mixed-models": Case([CROWD, "--set", "client.architectures=['mlp','lenet5']"],
                                r"averages weights, so all clients need one model"),
    "too-many-clients": Case([*SMALL, CROWD, "--set", "federation.num_clients=400"],
                             r"400 clients with min_size=20 need 8000 examples"),
    "too-many-shards": Case([CROWD, *SMALL, "--set", "federation.partition=shards",
                             "--set", "federation.shards_per_client=500"], r"10 clients x 500 shards exceed"),
    "missing-data-file": Case([CROWD, "--set", "data.dataset=npz", "--set", "data.path={tmp}/none.npz"],
                              r"npz: file '.*none.npz' does not exist"),
    # black-box
    "budget-below-one-iteration": Case([BLACKBOX, "--set", "distill.budget=1000"],
                                       r"distill.budget = 1000 is smaller than one iteration of 'tandemgan' \(1536 "),
    # the run directory
    "resume-without-out": Case([CROWD, "--resume"], r"--resume needs --out DIR", out=False),
    "resume-nothing-there": Case([CROWD, "--resume"], r"--resume: '.*out' holds no run \(no config.toml\)"),
    "resume-no-checkpoint": Case([CROWD, *SMALL, "--resume"],
                                 r"cannot be resumed: it holds no checkpoint, so its 2 metric rows would be lost",
                                 setup=lambda tmp: existing_run(tmp, rows=2, checkpoint=False)),
    "resume-corrupt-checkpoint": Case([CROWD, *SMALL, "--resume"],
                                      r"cannot be resumed: none of its checkpoints is intact",
                                      setup=corrupt_checkpoint),
    "resume-changed-config": Case([CROWD, *SMALL, "--set", "federation.num_rounds=3", "--resume"],
                                  r"the config differs .* at \['federation.num_rounds'\]", setup=existing_run),
    "out-holds-a-run": Case([CROWD, *SMALL], r"already holds a run; pass --resume", setup=existing_run),
    "out-held-by-live-process": Case([CROWD, *SMALL, "--resume"], r"is being written by process \d+ on",
                                     setup=held_by_another_process),
    "out-is-a-file": Case([CROWD], r"--out '.*out' is a file, not a directory", setup=a_file),
    "out-under-a-file": Case([CROWD, "--out", "{tmp}/out/run"], r"--out '.*out/run' cannot be created",
                             setup=a_file, out=False),
}


def snapshot(tmp: Path) -> dict[str, bytes]:
    """Every file under ``tmp`` by path (a checkpoint set aside as ``.corrupt`` is the same file)."""
    return {str(p.relative_to(tmp)).removesuffix(".corrupt"): p.read_bytes()
            for p in sorted(tmp.rglob("*")) if p.is_file() and p.name != LOCK_FILE}


@pytest.mark.parametrize("case", [pytest.param(c, id=name, marks=c.marks) for name, c in CASES.items()])
def test_a_bad_run_is_one_line_and_loses_nothing(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    if case.cuda:
        monkeypatch.setattr("fedkd.devices.available_devices", lambda: ["cpu", "cuda:0"])
    if case.setup is not None:
        case.setup(tmp_path)
    before = snapshot(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in case.args]
    if case.out:
        args += ["--out", str(tmp_path / "out")]
    capsys.readouterr()

    code = main(["run", *args])

    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("fedkd run: ")]
    assert code == 2 and len(errors) == 1, errors
    assert errors[0].startswith("fedkd run: error: ")
    assert re.search(case.message, errors[0]), errors[0]
    assert snapshot(tmp_path) == before  # nothing written before is lost, and no stub blocks a retry
