"""The ``federated`` experiment kind: a Flower simulation (Ray backend) of a fedkd federation.

Client resources come from the config (``federation.client_cpus`` / ``client_gpus``); on this 2-core machine
``client_cpus = 1`` runs two clients at a time. The same ServerApp and ClientApp deploy unchanged on a
SuperLink with SuperNodes (see the README).
"""

from __future__ import annotations

import logging
import os
import warnings

from flwr.clientapp import ClientApp
from flwr.simulation import run_simulation

from fedkd.config import DataSection, ExperimentConfig, ExperimentKind
from fedkd.distill.aedm import AEDMConfig
from fedkd.distill.loop import DistillConfig
from fedkd.distill.tandemgan import TandemGANConfig
from fedkd.errors import ConfigError
from fedkd.federation.config import ClientSection, CrowdSection, FederationSection, QuerySection
from fedkd.federation.data import client_partitions, train_test
from fedkd.runs import RunDir
from fedkd_clients.app import app as default_client_app
from fedkd_simulations.flower_speedups import patchable_state_class, speed_up_simulation_state
from fedkd_strategies.registry import get_strategy
from fedkd_strategies.server import make_server_app


def check_federated(cfg: ExperimentConfig) -> None:
    """What the server would find wrong after Ray's start-up, found before it: the data and its partition, the
    strategy's settings, the global model with whatever it needs (a generator for the image size, a prior), and
    a Flower whose simulation state the speed-up can patch."""
    require_client_gpus(cfg)
    patchable_state_class()
    _filter_flower_log()  # building the strategy here is where Flower's FedAvg would first warn
    client_partitions(cfg)
    _, test = train_test(cfg)
    strategy = get_strategy(cfg.federation.strategy)(cfg)
    strategy.build_global_model((test.channels, test.image_size, test.image_size), test.n_classes)


def require_client_gpus(cfg: ExperimentConfig) -> None:
    """A CUDA run needs ``federation.client_gpus`` > 0: the clients train on ``run.device`` too, and Ray hides the GPUs
    from an actor given no share of them, so every client would fail in its first round."""
    device, gpus = cfg.run.device, cfg.federation.client_gpus
    if device.startswith("cuda") and gpus <= 0:
        raise ConfigError(
            f"federation.client_gpus must be > 0 when run.device = {device!r} (got {gpus}): the clients train on "
            f"{device!r} and Ray hides the GPU from a client with no share of it; give each a fraction, e.g. "
            f"{1 / cfg.federation.num_clients:g} for {cfg.federation.num_clients} clients on one GPU")


class _UnactionableFlowerWarnings(logging.Filter):
    """Drops the Flower records a fedkd user can do nothing about; every other warning and error passes.

    - Flower's INFO lines (nodes sampled and replies received at every step of every round): fedkd prints one
      line per round itself, with the test accuracy, and a failed reply is a WARNING, which still shows.
    - ``run_simulation`` is deprecated in favour of ``flwr run``, but it is the only Flower API that gives a
      client a fraction of a CPU (``flwr run`` carries ``client-resources-num-cpus`` as a uint32 in Flower 1.41
      and 1.42; the README's "The same apps under ``flwr run``" says where and what to do instead).
    """

    DROPPED = ("DEPRECATED FEATURE: The `run_simulation` function",)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return record.levelno >= logging.WARNING and not any(text in message for text in self.DROPPED)


def _filter_flower_log() -> None:
    flower_log = logging.getLogger("flwr")
    if not any(isinstance(f, _UnactionableFlowerWarnings) for f in flower_log.filters):
        flower_log.addFilter(_UnactionableFlowerWarnings())


def run_federated(cfg: ExperimentConfig, run: RunDir, client_app: ClientApp = default_client_app) -> None:
    """Simulate ``cfg``'s federation with Ray; ``client_app`` swaps in another ClientApp (tests, custom clients)."""
    for key, value in SIMULATION_ENV.items():
        os.environ.setdefault(key, value)
    _filter_flower_log()
    speed_up_simulation_state()
    gpus = cfg.federation.client_gpus
    with warnings.catch_warnings():
        # Ray announces that a future version will stop hiding GPUs from actors given num_gpus=0. fedkd sets
        # federation.client_gpus for every actor, so the change cannot affect a run: nothing to act on.
        warnings.filterwarnings("ignore", message="Tip: In future versions of Ray", category=FutureWarning)
        _simulate(cfg, run, client_app, gpus)


def _simulate(cfg: ExperimentConfig, run: RunDir, client_app: ClientApp, gpus: float) -> None:
    run_simulation(
        server_app=make_server_app(cfg, run),
        client_app=client_app,
        num_supernodes=cfg.federation.num_clients,
        backend_config={
            "client_resources": {"num_cpus": cfg.federation.client_cpus, "num_gpus": gpus},
            "init_args": {
                "num_cpus": os.cpu_count() or 1,
                "num_gpus": 1 if gpus > 0 else 0,
                "include_dashboard": False,
                "log_to_driver": False,
            },
        },
    )


SIMULATION_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEDUP_LOGS": "0",
}

EXPERIMENT = ExperimentKind(
    sections={
        "data": DataSection,
        "federation": FederationSection,
        "crowd": CrowdSection,
        "client": ClientSection,
        "query": QuerySection,
        "distill": DistillConfig,
        "tandemgan": TandemGANConfig,
        "aedm": AEDMConfig,
    },
    run=run_federated,
    check=check_federated,
    description="federated training on noisy crowd labels (Flower simulation, Ray backend)",
)
