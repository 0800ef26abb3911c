"""The ``fedkd`` command: user errors are one clear line and a non-zero exit; list and plot work."""

import subprocess
import sys
from pathlib import Path

import pytest

from fedkd.config import load_config
from fedkd.errors import DataError
from fedkd.plots import plot_run
from fedkd.runs import RunDir

ROOT = Path(__file__).resolve().parent.parent


def fedkd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedkd.cli", *args], capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "simulations/crowd_fedavg.toml", "--set", "federation.num_clent=3"], "federation.num_clent"),
        (["run", "simulations/nope.toml"], "does not exist"),
        (["run", "simulations/crowd_fedavg.toml", "--resume"], "--resume needs --out"),
        (["plot", "/nonexistent/run"], "has no metrics.csv"),
        (["teacher", "train", "--dataset", "digits", "--model", "lenet5", "--out", "/nonexistent/t", "--device", "tpu"],
         "--device = 'tpu' is not a device name"),
        (["prior", "train", "--dataset", "digits", "--out", "/nonexistent/p", "--device", "gpu0"],
         "--device = 'gpu0' is not a device name"),
        (["gan", "train", "--dataset", "digits", "--out", "/nonexistent/g", "--device", "cuda:7"],
         "--device = 'cuda:7' is not available on this machine"),
        (["prior", "train", "--dataset", "digits", "--out", "/nonexistent/p", "--precision", "bf16"],
         "--precision = 'bf16' needs a CUDA device, got --device = 'cpu'"),
    ],
)
def test_user_errors_are_one_line_without_traceback(args, message):
    out = fedkd(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_list_names_the_registries():
    out = fedkd("list")
    assert out.returncode == 0, out.stderr
    for name in ("mnist5k", "digits28", "lenet5", "mv", "federated", "fedavg", "dog"):
        assert name in out.stdout


def test_plot_writes_png_next_to_metrics(tmp_path):
    run = RunDir.open(tmp_path / "r", load_config(ROOT / "simulations" / "crowd_fedavg.toml"))
    for r in range(3):
        run.log("test_acc", 0.3 * r, round=r)
        for client in range(2):
            run.log("label_acc", 0.7 + 0.01 * client, round=r, client=client)
    png = plot_run(run.path)
    assert png == run.path / "metrics.png" and png.stat().st_size > 1000


def test_plot_refuses_a_run_without_accuracy(tmp_path):
    run = RunDir.open(tmp_path / "r", load_config(ROOT / "simulations" / "crowd_fedavg.toml"))
    run.log("round_seconds", 1.0, round=1)
    with pytest.raises(DataError, match="none of the plotted metrics"):
        plot_run(run.path)
