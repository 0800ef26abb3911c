"""Run directories: what they hold, how they refuse to overwrite, and how resume rolls back."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from fedkd.config import load_config
from fedkd.errors import ConfigError
from fedkd.runs import RunDir, RunResult, _lock_record, read_metrics
from fedkd.stopping import RunInterrupted, clear_stop

CROWD_FEDAVG = Path(__file__).resolve().parent.parent / "simulations" / "crowd_fedavg.toml"


@pytest.fixture
def cfg():
    return load_config(CROWD_FEDAVG)


def test_fresh_run_writes_config_manifest_and_header(tmp_path, cfg):
    run = RunDir.open(tmp_path / "r", cfg)
    assert load_config(run.path / "config.toml") == cfg
    manifest = json.loads((run.path / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["versions"]["torch"] == torch.__version__
    assert {"versions", "git", "seed", "python", "started"} <= set(manifest)
    assert list(run.metrics().columns) == ["round", "step", "queries", "client", "metric", "value"]


def test_log_appends_tidy_rows(tmp_path, cfg):
    run = RunDir.open(tmp_path / "r", cfg)
    run.log("test_acc", 0.5, round=1)
    run.log("label_acc", 0.75, round=1, client=3)
    run.log("fidelity", 0.9, step=10, queries=2560)
    df = read_metrics(run.metrics_path)
    assert df["metric"].tolist() == ["test_acc", "label_acc", "fidelity"]
    assert df["round"].tolist()[:2] == [1, 1] and df["queries"].iloc[2] == 2560
    assert df["client"].iloc[1] == "3"
    result = RunResult(run.path, df)
    assert result.final("test_acc") == 0.5
    assert result.final("label_acc", client=3) == 0.75
    with pytest.raises(KeyError, match="was not logged"):
        result.final("fid_like")


def test_refuses_to_overwrite_and_resume_needs_a_run(tmp_path, cfg):
    RunDir.open(tmp_path / "r", cfg)
    with pytest.raises(ConfigError, match="already holds a run"):
        RunDir.open(tmp_path / "r", cfg)
    with pytest.raises(ConfigError, match="holds no run"):
        RunDir.open(tmp_path / "empty", cfg, resume=True)


def test_resume_rejects_a_changed_config(tmp_path, cfg):
    RunDir.open(tmp_path / "r", cfg)
    with pytest.raises(ConfigError, match=r"federation\.num_rounds"):
        RunDir.open(tmp_path / "r", cfg.replace({"federation.num_rounds": 9}), resume=True)


def test_checkpoint_round_trip_and_resume_rollback(tmp_path, cfg):
    run = RunDir.open(tmp_path / "r", cfg)
    weights = {"w": torch.arange(6.0).reshape(2, 3)}
    for r in (1, 2, 3):
        run.log("test_acc", 0.1 * r, round=r)
        if r < 3:
            run.save_checkpoint({"w": weights["w"] * r}, {"round_acc": 0.1 * r}, round=r)
    resumed = RunDir.open(tmp_path / "r", cfg, resume=True)
    ckpt = resumed.load_checkpoint()
    assert ckpt.round == 2 and ckpt.state == {"round_acc": 0.2}
    assert torch.equal(ckpt.tensors["w"], weights["w"] * 2)
    assert resumed.metrics()["round"].tolist() == [1, 2]  # round 3 was measured after the last checkpoint


def test_only_recent_checkpoints_are_kept(tmp_path, cfg):
    run = RunDir.open(tmp_path / "r", cfg)
    for step in range(5):
        run.save_checkpoint({"w": torch.zeros(1)}, {}, step=step)
    assert sorted(p.name for p in run.checkpoint_dir.glob("*.json")) == ["ckpt-00000003.json", "ckpt-00000004.json"]
    assert run.load_checkpoint().step == 4


def test_resume_without_a_checkpoint_starts_over_only_when_nothing_would_be_lost(tmp_path, cfg):
    RunDir.open(tmp_path / "empty", cfg)
    assert RunDir.open(tmp_path / "empty", cfg, resume=True).metrics().empty  # stopped before it measured anything
    run = RunDir.open(tmp_path / "r", cfg)
    run.log("test_acc", 0.1, round=0)
    with pytest.raises(ConfigError, match="cannot be resumed: it holds no checkpoint, so its 1 metric rows"):
        RunDir.open(tmp_path / "r", cfg, resume=True)
    assert len(run.metrics()) == 1


def test_a_live_process_owns_its_run_and_a_dead_ones_lock_is_taken_over(tmp_path, cfg):
    run = RunDir.open(tmp_path / "r", cfg)
    run.save_checkpoint({"w": torch.zeros(1)}, {}, round=1)
    with subprocess.Popen(["sleep", "30"]) as other:
        run.lock_path.write_text(json.dumps(_lock_record(other.pid)))
        with pytest.raises(ConfigError, match=f"is being written by process {other.pid} on"):
            RunDir.open(tmp_path / "r", cfg, resume=True)
        other.kill()
    other.wait()
    with RunDir.open(tmp_path / "r", cfg, resume=True) as resumed:  # its holder is gone: the lock is stale
        assert json.loads(resumed.lock_path.read_text())["pid"] == os.getpid()
    assert not resumed.lock_path.exists()


def test_a_corrupt_latest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, cfg, caplog):
    run = RunDir.open(tmp_path / "r", cfg)
    for r in (1, 2):
        run.log("test_acc", 0.1 * r, round=r)
        run.save_checkpoint({"w": torch.full((100,), float(r))}, {}, round=r)
    latest = run.checkpoint_dir / "ckpt-00000002.safetensors"
    latest.write_bytes(latest.read_bytes()[:50])  # truncated, as a full disk or a killed copy leaves it
    resumed = RunDir.open(tmp_path / "r", cfg, resume=True)
    assert resumed.load_checkpoint().round == 1 and resumed.metrics()["round"].tolist() == [1]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "ckpt-00000002 does not read" in warnings[0]
    assert (run.checkpoint_dir / "ckpt-00000002.safetensors.corrupt").exists()  # set aside, not deleted


def test_resume_when_no_checkpoint_is_intact_is_an_error_that_keeps_the_rows(tmp_path, cfg):
    run = RunDir.open(tmp_path / "r", cfg)
    run.log("test_acc", 0.1, round=1)
    run.save_checkpoint({"w": torch.zeros(1)}, {}, round=1)
    (run.checkpoint_dir / "ckpt-00000001.json").write_text("{")
    with pytest.raises(ConfigError, match="cannot be resumed: none of its checkpoints is intact, so its 1 metric"):
        RunDir.open(tmp_path / "r", cfg, resume=True)
    assert len(run.metrics()) == 1


@pytest.fixture
def stop_flag():
    yield
    clear_stop()  # the flag is process-wide: leave it clear for the tests that follow


def test_an_interrupted_run_keeps_what_its_last_checkpoint_covers_and_writes_nothing_after(tmp_path, cfg, stop_flag):
    with pytest.raises(RunInterrupted, match=r"interrupted by SIGINT; .* \(round 1\); continue it with --resume"):
        with RunDir.open(tmp_path / "r", cfg) as run:
            run.log("test_acc", 0.1, round=1)
            run.save_checkpoint({"w": torch.zeros(1)}, {}, round=1)
            run.log("test_acc", 0.2, round=2)  # measured, but its round never reached a checkpoint
            raise KeyboardInterrupt
    assert run.metrics()["round"].tolist() == [1] and not run.lock_path.exists()
    with pytest.raises(RunInterrupted):
        run.log("test_acc", 0.3, round=2)  # the stop flag holds until the next run starts
    assert run.metrics()["round"].tolist() == [1]


def test_a_failed_fresh_start_leaves_nothing_behind(tmp_path, cfg):
    with pytest.raises(ConfigError, match="bad input"), RunDir.open(tmp_path / "new" / "r", cfg):
        raise ConfigError("bad input")
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()
    with pytest.raises(ConfigError, match="bad input"), RunDir.open(tmp_path / "mine", cfg):
        raise ConfigError("bad input")
    assert (tmp_path / "mine").is_dir() and not any((tmp_path / "mine").iterdir())  # the user's folder stays
