"""The run directory: everything needed to trust, compare and resume a run.

``DIR/config.toml`` is the resolved config (defaults filled in, overrides applied), ``DIR/manifest.json``
records versions, git commit, seed and host, ``DIR/metrics.csv`` is a tidy long table appended row by row
as the run goes (so a crash loses nothing already measured), and ``DIR/checkpoints/`` holds safetensors
checkpoints. A checkpoint is written tensors first and its JSON sidecar last, so a sidecar marks a
complete checkpoint; resuming rolls ``metrics.csv`` back to the rows the last complete checkpoint had seen,
and a resumed run therefore ends with the same table as an uninterrupted one. A checkpoint that no longer
reads (a truncated file) is set aside as ``*.corrupt`` with a warning, and the newest intact one is used.

A run directory has one owner: ``DIR/run.lock`` names the process that writes it (pid, host, start time),
so a second process cannot write a run that a live one holds; the lock of a process that is gone is taken
over. Used as a context manager (what ``fedkd.run`` does), a ``RunDir`` releases its lock at the end; on a
signal (``fedkd.stopping``) it refuses further writes and leaves ``metrics.csv`` at the last complete
checkpoint; and a fresh run that fails before it measured anything removes what it created, so the same
``--out`` can be retried.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd
import tomli_w
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from fedkd.config import ExperimentConfig, load_config
from fedkd.errors import ConfigError
from fedkd.progress import EvaluationLines
from fedkd.stopping import RunInterrupted, check_stop, critical, interruption

METRIC_COLUMNS = ("round", "step", "queries", "client", "metric", "value")
TIMING_METRICS = ("round_seconds", "memory_mib")  # vary run to run; compare everything else
KEEP_CHECKPOINTS = 2
LOCK_FILE = "run.lock"
log = logging.getLogger("fedkd")
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
        self.lock_path = path / LOCK_FILE
        self._write_lock = threading.Lock()
        self._created: list[Path] = []  # what a fresh open made, removed again if the start fails
        self.lines = EvaluationLines()

    @classmethod
    def open(cls, path: str | Path, cfg: ExperimentConfig, *, resume: bool = False) -> RunDir:
        """Create a fresh run directory, or reopen one for ``resume`` after checking its config matches."""
        path = Path(path)
        run = cls(path, cfg)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"--out {str(path)!r} is a file, not a directory; choose another --out")
        if resume:
            if not (path / "config.toml").is_file():
                raise ConfigError(f"--resume: {str(path)!r} holds no run (no config.toml); start it without --resume")
            run._check_same_config()  # read-only: a refused resume leaves the directory as it was
            run._acquire()
            try:
                run._reopen()
            except BaseException:
                run._release()
                raise
        else:
            if run.metrics_path.exists():
                raise ConfigError(
                    f"run directory {str(path)!r} already holds a run; "
                    "pass --resume to continue it or choose another --out"
                )
            run._create()
        _write_json(path / "manifest.json", _manifest(cfg, resumed=resume))
        return run

    def _create(self) -> None:
        missing = [p for p in (self.path, *self.path.parents) if not p.exists()]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"--out {str(self.path)!r} cannot be created: {err.strerror}") from None
        self._created = sorted(missing, key=lambda p: len(p.parts))
        self._acquire()
        self._created += [self.lock_path, self.path / "config.toml", self.metrics_path, self.path / "manifest.json"]
        (self.path / "config.toml").write_text(tomli_w.dumps(self.cfg.to_dict()))
        _write_metrics(self.metrics_path, [])

    def _check_same_config(self) -> None:
        saved = load_config(self.path / "config.toml")
        if saved.to_dict() != self.cfg.to_dict():
            changed = sorted(k for k, v in self.cfg.flat().items() if saved.flat().get(k) != v)
            raise ConfigError(
                f"--resume: the config differs from the one {str(self.path)!r} was started with, at {changed}"
            )

    def _reopen(self) -> None:
        rows = _read_metrics(self.metrics_path) if self.metrics_path.exists() else []
        had_checkpoints = any(self.checkpoint_dir.glob("ckpt-*.json"))
        checkpoint = self.load_checkpoint()
        if checkpoint is None and (rows or had_checkpoints):
            why = "none of its checkpoints is intact" if had_checkpoints else "it holds no checkpoint"
            raise ConfigError(
                f"--resume: {str(self.path)!r} cannot be resumed: {why}, so its {len(rows)} metric rows would be "
                "lost; start it again with another --out"
            )
        self._roll_back(checkpoint)

    def _roll_back(self, checkpoint: Checkpoint | None) -> None:
        """Drop the rows measured after ``checkpoint`` (all of them without one)."""
        rows = _read_metrics(self.metrics_path) if self.metrics_path.exists() else []
        if checkpoint is None:
            rows = []
        else:
            rows = [r for r in rows if _seen_by(r, checkpoint.round, checkpoint.step)]
        _write_metrics(self.metrics_path, rows)

    # --- ownership ------------------------------------------------------------------------------

    def _acquire(self) -> None:
        """Take ``run.lock``, or fail naming the live process that holds it (a dead holder's lock is taken over)."""
        mine = _lock_record(os.getpid())
        for _ in range(2):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = _read_lock(self.lock_path)
                if holder == mine:
                    return
                if holder is not None and _holds(holder):
                    raise ConfigError(
                        f"run directory {str(self.path)!r} is being written by process {holder['pid']} on "
                        f"{holder['host']}; stop it first, or choose another --out"
                    ) from None
                self.lock_path.unlink(missing_ok=True)  # its writer is gone: take the run over
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(mine, fh)
            return
        raise ConfigError(f"run directory {str(self.path)!r}: another process took {LOCK_FILE} at the same moment")

    def _release(self) -> None:
        if _read_lock(self.lock_path) == _lock_record(os.getpid()):
            self.lock_path.unlink(missing_ok=True)

    def __enter__(self) -> RunDir:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Release the run; on an interruption leave it at its last complete checkpoint; undo a failed fresh start."""
        try:
            stopped = interruption(exc) if exc is not None else None
            if stopped is not None:
                with self._write_lock:  # waits for a write in flight in another thread; later ones are refused
                    checkpoint = self.load_checkpoint()
                    self._roll_back(checkpoint)
                where = "no checkpoint yet" if checkpoint is None else _describe(checkpoint)
                raise RunInterrupted(
                    stopped.signum, f"{self.path} is left at its last complete checkpoint ({where}); "
                    f"continue it with --resume"
                ) from None
            if exc is not None and self._created and self._measured_nothing():
                self._remove_created()
        finally:
            self._release()

    def _measured_nothing(self) -> bool:
        rows = _read_metrics(self.metrics_path) if self.metrics_path.exists() else []
        return not rows and not any(self.checkpoint_dir.glob("ckpt-*"))

    def _remove_created(self) -> None:
        for path in reversed(self._created):
            if path.is_dir():
                if not any(path.iterdir()):
                    path.rmdir()
            else:
                path.unlink(missing_ok=True)

    # --- writing --------------------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One write at a time, none once a stop was requested, none cut in two by a signal."""
        with self._write_lock, critical():
            check_stop()
            yield

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
        with self._writing(), self.metrics_path.open("a", newline="") as fh:
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
        with self._writing():
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
        """The newest intact checkpoint, or None for a fresh run.

        A checkpoint that does not read back (a truncated or garbled file) is renamed ``*.corrupt`` with a
        one-line warning, and the next older one is tried.
        """
        for sidecar in sorted(self.checkpoint_dir.glob("ckpt-*.json"), reverse=True):
            weights = sidecar.with_suffix(".safetensors")
            try:
                meta = json.loads(sidecar.read_text())
                checkpoint = Checkpoint(tensors=load_file(str(weights)), state=meta["state"],
                                        round=meta["round"], step=meta["step"])
            except (OSError, ValueError, KeyError, TypeError, SafetensorError) as err:
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                log.warning("checkpoint %s does not read (%s); set aside as .corrupt, using an older one",
                            sidecar.with_suffix(""), reason)
                for part in (sidecar, weights):
                    if part.exists():
                        os.replace(part, part.with_name(part.name + ".corrupt"))
                continue
            return checkpoint
        return None


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


def _describe(checkpoint: Checkpoint) -> str:
    return f"round {checkpoint.round}" if checkpoint.round is not None else f"step {checkpoint.step}"


def _lock_record(pid: int) -> dict[str, Any]:
    return {"pid": pid, "host": socket.gethostname(), "started": _process_start(pid)}


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # unreadable or half-written: nobody can be shown to hold it
    return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None


def _holds(holder: dict[str, Any]) -> bool:
    """Whether the process a lock names still runs (a lock from another host is assumed live)."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = _process_start(holder["pid"])
    return started is None or holder.get("started") in (None, started)  # a reused pid started later


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), to tell a reused pid apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


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
