"""Real signals to a real black-box and a real generative ``fedkd run``: each stops within seconds, leaves its
directory at the last complete checkpoint, exits 128 + the signal, and ``--resume`` ends with the uninterrupted run's
metrics. (The federated run's Ctrl-C test is in ``test_federation.py``, where it shares the uninterrupted run.)
The generative run gets Ctrl-C after its first student's phase."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pandas as pd
from run_process import ROOT, STOP_SECONDS, latest_checkpoint, start_run, stop, wait_for

import fedkd
from fedkd.runs import read_metrics

BLACKBOX = {"distill.budget": 7_000, "distill.batch_size": 64, "distill.eval_every": 1_000,
            "distill.checkpoint_every": 2_000}
TIMING = ("seconds/teacher", "seconds/generator", "seconds/student", "queries_per_second", "student_steps_per_second")


def without_timing(metrics: pd.DataFrame) -> pd.DataFrame:
    return metrics[~metrics["metric"].isin(TIMING)].reset_index(drop=True)


def test_sigterm_stops_a_blackbox_run_and_resume_ends_as_if_uninterrupted(tmp_path: Path) -> None:
    config = ROOT / "simulations" / "tandemgan_digits28.toml"
    out = tmp_path / "run"
    proc = start_run(config, BLACKBOX, out)
    wait_for(out / "checkpoints" / "ckpt-00000006.json", proc, timeout=120)  # 6 iterations of 384 queries
    code, seconds, last_line = stop(proc, os.kill, signal.SIGTERM)

    assert code == 128 + signal.SIGTERM and seconds < STOP_SECONDS, (code, seconds, last_line)
    assert "interrupted by SIGTERM" in last_line and "continue it with --resume" in last_line
    assert read_metrics(out / "metrics.csv")["step"].max() == latest_checkpoint(out)  # nothing after it
    assert not (out / "run.lock").exists()

    resumed = fedkd.run(config, overrides=BLACKBOX, out=out, resume=True)
    uninterrupted = fedkd.run(config, overrides=BLACKBOX, out=tmp_path / "uninterrupted")
    pd.testing.assert_frame_equal(without_timing(resumed.metrics), without_timing(uninterrupted.metrics))


def test_ctrl_c_stops_a_generative_run_and_resume_ends_as_if_uninterrupted(tmp_path: Path) -> None:
    """Dark-knowledge distillation, Ctrl-C (SIGINT to the process group) after its first student's phase."""
    config = ROOT / "simulations" / "dark_knowledge.toml"
    overrides = {"distill.steps": 150, "eval.samples": 40, "eval.log_every": 50}
    out = tmp_path / "run"
    proc = start_run(config, overrides, out)
    wait_for(out / "checkpoints" / "ckpt-00000001.json", proc, timeout=180)  # the teacher's phase, then a student's
    code, seconds, last_line = stop(proc, os.killpg, signal.SIGINT)

    assert code == 128 + signal.SIGINT and seconds < STOP_SECONDS, (code, seconds, last_line)
    assert "continue it with --resume" in last_line
    assert read_metrics(out / "metrics.csv")["round"].max() <= latest_checkpoint(out)  # nothing after it
    assert not (out / "run.lock").exists()

    generative = ("train_seconds/", "sample_ms_per_image/")
    resumed = fedkd.run(config, overrides=overrides, out=out, resume=True).metrics
    uninterrupted = fedkd.run(config, overrides=overrides, out=tmp_path / "uninterrupted").metrics
    pd.testing.assert_frame_equal(*(m[~m["metric"].str.startswith(generative)].reset_index(drop=True)
                                    for m in (resumed, uninterrupted)))
