"""``--resume`` on the generative kinds: a run cut after any finished phase ends with the same metrics."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

import fedkd
from fedkd.errors import ConfigError
from fedkd.runs import read_metrics

TIMING_PREFIXES = ("train_seconds/", "sample_ms_per_image/")
CONFIGS = {
    "dark_knowledge": ("simulations/dark_knowledge.toml",
                       {"distill.steps": 4, "eval.samples": 40, "eval.log_every": 2, "eval.ablations": True}),
    "single_fold": ("simulations/single_fold.toml",
                    {"student.steps": [16, 8], "distill.steps_per_halving": 2, "eval.samples": 20,
                     "eval.teacher_steps": [8], "eval.log_every": 2}),
}


def without_timing(metrics: pd.DataFrame) -> pd.DataFrame:
    return metrics[~metrics["metric"].str.startswith(TIMING_PREFIXES)].reset_index(drop=True)


def _cut_back_to(run: Path, keep: int) -> None:
    """Leave only the checkpoints of the first ``keep`` phases, as if the run had been stopped there."""
    sidecars = sorted((run / "checkpoints").glob("ckpt-*.json"))
    for sidecar in sidecars[keep:]:
        sidecar.unlink()
        sidecar.with_suffix(".safetensors").unlink()


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_a_run_resumed_after_a_finished_phase_ends_with_the_same_metrics(tmp_path: Path, kind: str) -> None:
    config, overrides = CONFIGS[kind]
    complete = fedkd.run(config, out=tmp_path / "complete", overrides=overrides)
    assert complete.metrics["round"].notna().all()  # every row names the phase that logged it
    phases = sorted((tmp_path / "complete" / "checkpoints").glob("ckpt-*.json"))
    assert len(phases) == 2  # the last two phases' checkpoints are kept
    crashed = tmp_path / "crashed"
    shutil.copytree(tmp_path / "complete", crashed)
    _cut_back_to(crashed, keep=1)
    with (crashed / "metrics.csv").open("a") as fh:  # rows of the interrupted phase that must be rolled back
        fh.write(f"{int(complete.metrics['round'].max())},,,,fid_like/interrupted,1.0\n")
    resumed = fedkd.run(config, out=crashed, overrides=overrides, resume=True)
    pd.testing.assert_frame_equal(without_timing(resumed.metrics), without_timing(complete.metrics))
    assert (crashed / "samples.png").is_file()
    again = fedkd.run(config, out=crashed, overrides=overrides, resume=True)  # a finished run stays finished
    pd.testing.assert_frame_equal(again.metrics, resumed.metrics)


def test_a_run_without_an_intact_checkpoint_is_not_silently_restarted(tmp_path: Path) -> None:
    """Rows but no checkpoint: resuming would have to drop measured rows, so it is an error, never a restart."""
    config, overrides = CONFIGS["dark_knowledge"]
    complete = fedkd.run(config, out=tmp_path / "complete", overrides=overrides)
    shutil.rmtree(tmp_path / "complete" / "checkpoints")
    with pytest.raises(ConfigError, match="cannot be resumed: it holds no checkpoint"):
        fedkd.run(config, out=tmp_path / "complete", overrides=overrides, resume=True)
    assert len(read_metrics(complete.path / "metrics.csv")) == len(complete.metrics)
