"""The Python API that the CLI wraps: ``fedkd.run`` and ``fedkd.load_config``."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedkd.config import ExperimentConfig, load_config
from fedkd.devices import resolve_device
from fedkd.runs import RunDir, RunResult
from fedkd.stopping import stop_on_signals


def default_out(cfg: ExperimentConfig) -> Path:
    return Path("runs") / f"{cfg.run.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def run(
    config: str | Path | Mapping[str, Any] | ExperimentConfig,
    overrides: Mapping[str, Any] | list[str] | None = None,
    out: str | Path | None = None,
    resume: bool = False,
) -> RunResult:
    """Run one experiment and return its metrics.

    ``config`` is a TOML path, a dict or a loaded config; ``overrides`` are ``{"section.key": value}``;
    ``out`` is the run directory (default ``runs/<name>-<time>``); ``resume`` continues the run in ``out``
    from its last complete checkpoint.

    Everything that can be checked is checked before the run directory is written (``run.device`` on this
    machine, the kind's own ``check``). SIGINT or SIGTERM stop the run (``fedkd.stopping``): it raises
    ``RunInterrupted`` with the directory left at its last complete checkpoint.
    """
    cfg = load_config(config, overrides)
    if resume and out is None:
        raise ValueError("resume=True needs out= naming the run directory to continue")
    device = resolve_device(cfg.run.device)
    if device != cfg.run.device:
        cfg = cfg.replace({"run.device": device})
    with stop_on_signals():
        if cfg.kind.check is not None:
            cfg.kind.check(cfg)
        with RunDir.open(out if out is not None else default_out(cfg), cfg, resume=resume) as rundir:
            cfg.kind.run(cfg, rundir)
    return RunResult(path=rundir.path, metrics=rundir.metrics())
