"""The run directory: everything needed to trust, compare and resume a run.

``DIR/config.toml`` is the resolved config (defaults filled in, overrides applied), ``DIR/manifest.json``
records versions, git commit, seed and host, ``DIR/metrics.csv`` is a tidy long table appended row by row
as the run goes (so a crash loses nothing already measured), and ``DIR/checkpoints/`` holds safetensors
checkpoints. A checkpoint is written tensors first and its JSON sidecar last, so a sidecar marks a
complete checkpoint; resuming rolls ``metrics.csv`` back to the rows the last complete checkpoint had seen,
and a resumed run therefore ends with the same table as an uninterrupted one.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
import tomli_w
import torch
from safetensors.torch import load_file, save_file

from fedkd.config import ExperimentConfig, load_config
from fedkd.errors import ConfigError
from fedkd.progress import EvaluationLines

METRIC_COLUMNS = ("round", "step", "queries", "client", "metric", "value")
TIMING_METRICS = ("round_seconds", "memory_mib")  # vary run to run; compare everything else
KEEP_CHECKPOINTS = 2
_PACKAGES = ("fedkd", "torch", "numpy", "pandas", "flwr", "ray", "diffusers", "scikit-learn", "safetensors")


@dataclass(frozen=True)
class Checkpoint:
    tensors: dict[str, torch.Tensor]
    state: dict[str, Any]
    round: int | None
    step: int | None


class RunDir:
    """One run's directory. Open it with :meth:`open`; log with :meth:`log`; checkpoint with :meth:`save_checkpoint`."""

    def __init__(self, path: Path, cfg: ExperimentConfig) -> None:
        self.path = path
        self.cfg = cfg
        self.metrics_path = path / "metrics.csv"
        self.checkpoint_dir = path / "checkpoints"
        self.lines = EvaluationLines()

    @classmethod
    def open(cls, path: str | Path, cfg: ExperimentConfig, *, resume: bool = False) -> RunDir:
        """Create a fresh run directory, or reopen one for ``resume`` after checking its config matches."""
        path = Path(path)
        run = cls(path, cfg)
        if resume:
            run._reopen()
        else:
            if run.metrics_path.exists():
                raise ConfigError(
                    f"run directory {str(path)!r} already holds a run; "
                    "pass --resume to continue it or choose another --out"
                )
            _make_run_dir(path)
            (path / "config.toml").write_text(tomli_w.dumps(cfg.to_dict()))
            _write_metrics(run.metrics_path, [])
        _write_json(path / "manifest.json", _manifest(cfg, resumed=resume))
        return run

    def _reopen(self) -> None:
        config_path = self.path / "config.toml"
        if not config_path.is_file():
            raise ConfigError(f"--resume: {str(self.path)!r} holds no run (no config.toml); start it without --resume")
        saved = load_config(config_path)
        if saved.to_dict() != self.cfg.to_dict():
            changed = sorted(k for k, v in self.cfg.flat().items() if saved.flat().get(k) != v)
            raise ConfigError(
                f"--resume: the config differs from the one {str(self.path)!r} was started with, at {changed}"
            )
        latest = self._latest_sidecar()
        rows = _read_metrics(self.metrics_path) if self.metrics_path.exists() else []
        if latest is None:
            rows = []
        else:
            meta = json.loads(latest.read_text())
            rows = [r for r in rows if _seen_by(r, meta.get("round"), meta.get("step"))]
        _write_metrics(self.metrics_path, rows)

    def log(
        self,
        metric: str,
        value: float,
        *,
        round: int | None = None,
        step: int | None = None,
        queries: int | None = None,
        client: str | int | None = None,
    ) -> None:
        """Append one measurement to ``metrics.csv`` now (flushed, so it survives a crash)."""
        row = [_cell(round), _cell(step), _cell(queries), _cell(client), metric, repr(float(value))]
        with self.metrics_path.open("a", newline="") as fh:
            csv.writer(fh).writerow(row)
        if metric == "test_acc" and client is None:
            self.lines.evaluation(value, round=round, step=step, queries=queries)

    def metrics(self) -> pd.DataFrame:
        return read_metrics(self.metrics_path)

    def save_checkpoint(
        self,
        tensors: dict[str, torch.Tensor],
        state: dict[str, Any],
        *,
        round: int | None = None,
        step: int | None = None,
    ) -> None:
        """Write a checkpoint atomically: tensors as safetensors, then the JSON sidecar that marks it complete."""
        if round is None and step is None:
            raise ValueError("a checkpoint needs round= or step= to know which metrics it covers")
        self.checkpoint_dir.mkdir(exist_ok=True)
        key = round if round is not None else step
        stem = self.checkpoint_dir / f"ckpt-{key:08d}"
        tmp = stem.with_suffix(".safetensors.tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        os.replace(tmp, stem.with_suffix(".safetensors"))
        _write_json(stem.with_suffix(".json"), {"round": round, "step": step, "state": state, "time": time.time()})
        for old in sorted(self.checkpoint_dir.glob("ckpt-*.json"))[:-KEEP_CHECKPOINTS]:
            old.unlink()
            old.with_suffix(".safetensors").unlink(missing_ok=True)

    def load_checkpoint(self) -> Checkpoint | None:
        """The latest complete checkpoint, or None for a fresh run."""
        sidecar = self._latest_sidecar()
        if sidecar is None:
            return None
        meta = json.loads(sidecar.read_text())
        tensors = load_file(str(sidecar.with_suffix(".safetensors")))
        return Checkpoint(tensors=tensors, state=meta["state"], round=meta["round"], step=meta["step"])

    def _latest_sidecar(self) -> Path | None:
        sidecars = sorted(self.checkpoint_dir.glob("ckpt-*.json"))
        return sidecars[-1] if sidecars else None


@dataclass(frozen=True)
class RunResult:
    """What ``fedkd.run`` returns: the run directory and its tidy metrics."""

    path: Path
    metrics: pd.DataFrame

    def final(self, metric: str, client: str | int | None = None) -> float:
        """Last logged value of ``metric`` (server-side rows unless ``client`` is given)."""
        rows = self.metrics[self.metrics["metric"] == metric]
        rows = rows[rows["client"].isna()] if client is None else rows[rows["client"] == str(client)]
        if rows.empty:
            raise KeyError(f"metric {metric!r} was not logged; logged: {sorted(self.metrics['metric'].unique())}")
        return float(rows["value"].iloc[-1])


def _make_run_dir(path: Path) -> None:
    """Create ``path`` (and its parents) as a run directory, or a ConfigError saying why it cannot be one."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {str(path)!r} is a file, not a run directory; choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"--out {str(path)!r} cannot be used as a run directory: {err.strerror}") from None


def read_metrics(path: str | Path) -> pd.DataFrame:
    """``metrics.csv`` as a DataFrame with nullable integer round/step/queries and string client."""
    df = pd.read_csv(path, dtype={"client": "string", "metric": "string"})
    for col in ("round", "step", "queries"):
        df[col] = df[col].astype("Int64")
    return df


def _seen_by(row: list[str], round: int | None, step: int | None) -> bool:
    if round is not None and row[0] != "" and int(row[0]) > round:
        return False
    if step is not None and row[1] != "" and int(row[1]) > step:
        return False
    return True


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _read_metrics(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    return [r for r in rows[1:] if len(r) == len(METRIC_COLUMNS)]


def _write_metrics(path: Path, rows: list[list[str]]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(METRIC_COLUMNS)
        writer.writerows(rows)
    os.replace(tmp, path)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def _manifest(cfg: ExperimentConfig, *, resumed: bool) -> dict[str, Any]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return {
        "seed": cfg.run.seed,
        "kind": cfg.run.kind,
        "name": cfg.run.name,
        "device": cfg.run.device,
        "resumed": resumed,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "versions": versions,
        "git": _git_state(),
    }


def _git_state() -> dict[str, Any]:
    """Commit and dirtiness of the source tree fedkd was imported from (None outside a checkout)."""
    source = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=source, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}
