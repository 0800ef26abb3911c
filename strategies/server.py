"""The server side of a fedkd federation: rounds, server-side evaluation, metrics, checkpoints, resume.

``run_federation`` works against any ``Grid`` — the simulation engine's or a deployed SuperLink's — so the
same code serves ``fedkd run``, ``flwr run .`` and a multi-machine deployment.
"""

from __future__ import annotations

import logging
import time

import torch
from flwr.serverapp import Grid, ServerApp

from fedkd.config import ExperimentConfig
from fedkd.errors import FedkdError
from fedkd.federation.data import client_partitions, train_test
from fedkd.progress import progress
from fedkd.resources import tree_rss_bytes
from fedkd.runs import RunDir
from fedkd.seeding import seed_torch
from fedkd.train import evaluate_accuracy
from fedkd_strategies.interruptible_grid import InterruptibleGrid
from fedkd_strategies.messaging import Failure
from fedkd_strategies.registry import get_strategy

log = logging.getLogger("fedkd")
MODEL_PREFIX, STRATEGY_PREFIX = "model/", "strategy/"


def run_federation(grid: Grid, cfg: ExperimentConfig, run: RunDir) -> None:
    """Run ``federation.num_rounds`` rounds of ``federation.strategy``, continuing from the run's last checkpoint.

    A round in which no client replied is a warning; a run in which no round had a reply fails, because its
    model is the initial one. A stop request ends the waits for clients at once (``InterruptibleGrid``).
    """
    grid = InterruptibleGrid(grid)
    strategy = get_strategy(cfg.federation.strategy)(cfg)
    wait_for_nodes(grid, cfg.federation.num_clients, cfg.federation.connect_timeout)
    _, test = train_test(cfg)
    client_partitions(cfg)  # an impossible partition is the server's error, not every client's
    x_test, y_test = test.tensors(cfg.run.device)
    seed_torch(cfg.run.seed, "global-init")
    model = strategy.build_global_model((test.channels, test.image_size, test.image_size), test.n_classes)
    checkpoint = run.load_checkpoint()
    if checkpoint is None:
        first, rounds_replied = 1, 0
        run.log("test_acc", evaluate_accuracy(model, x_test, y_test), round=0)
    else:
        first, rounds_replied = checkpoint.round + 1, checkpoint.state.get("rounds_replied", 1)
        model.load_state_dict(_unprefix(checkpoint.tensors, MODEL_PREFIX))
        strategy.load_state(_unprefix(checkpoint.tensors, STRATEGY_PREFIX), checkpoint.state["strategy"])
        log.info("resuming %s after round %d", run.path, checkpoint.round)
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    for server_round in progress(
        range(first, cfg.federation.num_rounds + 1), desc="rounds", initial=first - 1, total=cfg.federation.num_rounds
    ):
        start = time.perf_counter()
        outcome = strategy.run_round(grid, server_round, weights)
        weights = outcome.weights
        for client, metrics in sorted(outcome.client_metrics.items()):
            for name, value in sorted(metrics.items()):
                run.log(name, value, round=server_round, client=client, queries=outcome.queries)
        model.load_state_dict(weights)
        acc = evaluate_accuracy(model, x_test, y_test)
        run.log("test_acc", acc, round=server_round, queries=outcome.queries)
        for name, value in sorted(outcome.server_metrics.items()):
            run.log(name, value, round=server_round, queries=outcome.queries)
        run.log("bytes_down", outcome.bytes_down, round=server_round)
        run.log("bytes_up", outcome.bytes_up, round=server_round)
        run.log("round_seconds", time.perf_counter() - start, round=server_round)
        memory = tree_rss_bytes()
        if memory is not None:
            run.log("memory_mib", memory / 2**20, round=server_round)
        failed = _failed_nodes(outcome.failures)
        run.log("clients_failed", len(failed), round=server_round)
        rounds_replied += bool(outcome.client_metrics)
        strategy_tensors, strategy_state = strategy.state()
        tensors = {MODEL_PREFIX + k: v for k, v in weights.items()}
        tensors.update({STRATEGY_PREFIX + k: v for k, v in strategy_tensors.items()})
        state = {"test_acc": acc, "strategy": strategy_state, "rounds_replied": rounds_replied}
        run.save_checkpoint(tensors, state, round=server_round)
        log.info("round %d: test_acc %.4f, %d clients replied", server_round, acc, len(outcome.client_metrics))
        for node, reasons in failed.items():
            log.warning("round %d: node %s dropped out of this round: %s", server_round, node, "; ".join(reasons))
        if not outcome.client_metrics:
            log.warning("round %d: no client replied; the global model is unchanged", server_round)
    if not rounds_replied:
        raise FedkdError(
            f"no client replied in any of the {cfg.federation.num_rounds} rounds, so the global model is the "
            "initial one; see the warnings above for why the clients failed"
        )


def _failed_nodes(failures: list[Failure]) -> dict[int, list[str]]:
    """Each failed node once, with its distinct reasons in the order they came."""
    failed: dict[int, list[str]] = {}
    for failure in failures:
        reasons = failed.setdefault(failure.node, [])
        if failure.reason not in reasons:
            reasons.append(failure.reason)
    return failed


def _unprefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def wait_for_nodes(grid: Grid, expected: int, timeout: float) -> None:
    """Block until ``expected`` nodes are connected; fail clearly instead of waiting forever."""
    deadline = time.monotonic() + timeout
    while (connected := len(list(grid.get_node_ids()))) < expected:
        if time.monotonic() > deadline:
            raise FedkdError(
                f"only {connected} of federation.num_clients = {expected} nodes connected within "
                f"{timeout:.0f} s; start more SuperNodes or lower federation.num_clients"
            )
        time.sleep(0.5)


def make_server_app(cfg: ExperimentConfig, run: RunDir) -> ServerApp:
    """A ServerApp bound to one resolved config and run directory (what ``fedkd run`` simulates)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: object) -> None:
        torch.set_num_threads(1)
        run_federation(grid, cfg, run)

    return app
