"""The ServerApp that ``flwr run .`` starts (simulation or a deployed SuperLink).

Its run config (``[tool.flwr.app.config]`` in pyproject.toml, or ``flwr run . --run-config ...``) names the
experiment — a config in ``simulations/`` such as ``"quickstart"``, or a path to a TOML file — plus
``overrides`` (``"federation.num_rounds=3 client.lr=0.01"``), the run directory ``out`` and ``resume``.
The experiment file stays the single source of truth; the app config only points at it.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import torch
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

import fedkd_simulations as simulations
from fedkd.api import default_out
from fedkd.config import load_config
from fedkd.errors import ConfigError
from fedkd.runs import RunDir
from fedkd_strategies.server import run_federation

app = ServerApp()


def experiment_path(name: str) -> Path:
    """``"quickstart"`` -> ``simulations/quickstart.toml``; anything with a suffix is taken as a path."""
    path = Path(name) if Path(name).suffix else Path(simulations.__file__).parent / f"{name}.toml"
    if not path.is_file():
        shipped = sorted(p.stem for p in Path(simulations.__file__).parent.glob("*.toml"))
        raise ConfigError(f"experiment {name!r} not found at {path}; shipped experiments: {shipped}")
    return path


@app.main()
def main(grid: Grid, context: Context) -> None:
    torch.set_num_threads(1)
    rc = context.run_config
    cfg = load_config(
        experiment_path(str(rc.get("experiment", "quickstart"))), shlex.split(str(rc.get("overrides", "")))
    )
    out = str(rc.get("out", "")) or default_out(cfg)
    with RunDir.open(Path(out).resolve(), cfg, resume=bool(rc.get("resume", False))) as run:
        run_federation(grid, cfg, run)
