"""One-shot data-free federated distillation, judged by the one-shot literature's protocol.

For each cell (federation: ``homogeneous`` = ``simulations/oneshot.toml``, ``heterogeneous`` =
``simulations/hetero.toml``; strategy; Dirichlet alpha; answer mode; seed) one run of the federation's single round
through the plain loop (``fedkd.federation.plain``: the same ``QueryServer`` round as the Flower simulation, which
``tests/test_oneshot.py`` checks gives identical metrics, without Ray's start-up per cell). A row per run: the
student's ``test_acc``, the references measured on the same trained clients (one-shot FedAvg where it exists,
the clients' combined answer in the run's mode and in probability mode, the best single client, and, for a combiner
that learns the clients, their test answers combined as it learnt them on the queries), rho = student /
combined answer in the run's mode, Delta = student - one-shot FedAvg, and seconds. Rows are appended as runs
finish, and cells already in the CSV are skipped, so the grid fills over several invocations.

    python benchmarks/oneshot.py [--federations homogeneous heterogeneous] [--strategies fedaedm feddf]
        [--alphas 0.1 0.3 0.5] [--modes label proba] [--seeds 0 1 2] [--set KEY=VALUE ...] [--tag NAME]

``--set`` changes the config of every cell (a lever measured in isolation); ``--tag`` names such a variant in the
CSV (``default`` otherwise). Writes ``benchmarks/results/oneshot.csv`` and ``oneshot.png``.

``--remeasure TAG ...`` measures the references of those rows (of ``--modes``) again with the current code (after
a change to how they are computed), without redoing the distillation.

``--clients`` measures instead what chose the clients' defaults in ``oneshot.toml``, on selection seeds (10-12,
never the benchmark's 0-2): for each way of training the clients (fixed epochs, early stopping on held-out cleaned
labels), the test accuracy of their combined answer under each combiner, in label and probability mode, and of
their weights averaged once (one-shot FedAvg), without any distillation. Writes
``benchmarks/results/oneshot_clients.csv``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from fedkd_benchmarks.result_rows import SELECTION_SEED

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CSV = RESULTS / "oneshot.csv"
FEDERATIONS = {"homogeneous": "oneshot.toml", "heterogeneous": "hetero.toml"}
# What a strategy changes in the federation's config: its query source, as shipped in its fed_*.toml.
STRATEGIES: dict[str, dict[str, object]] = {
    "fedaedm": {},
    "feddf": {"federation.strategy": "feddf", "distill.method": "real", "distill.batch_size": 500,
              "distill.student_steps": 5, "query.public_dataset": "digits", "query.public_box": 20},
    # simulations/oneshot_tandem.toml is oneshot.toml with these (tests/test_shipped_configs.py keeps them equal).
    "fedtandem": {"federation.strategy": "fedtandem", "distill.method": "tandemgan", "distill.budget": 300_000,
                  "distill.batch_size": 500, "distill.student_steps": 5, "query.wave_size": 500,
                  "tandemgan.body": "strokes", "distill.logit_adjustment": 1.0, "query.combine": "coverage"},
}
# Ways to train the clients once: fixed epochs on all cleaned labels, or early stopping on a held-out share of them.
CLIENT_TRAINING: dict[str, dict[str, object]] = {
    "10 epochs": {"client.local_epochs": 10},
    "20 epochs": {"client.local_epochs": 20},
    "40 epochs": {"client.local_epochs": 40},
    "early stop (20 % held out, patience 10)": {"client.local_epochs": 60, "client.val_fraction": 0.2,
                                                "client.patience": 10},
    "best of 40 epochs (20 % held out)": {"client.local_epochs": 40, "client.val_fraction": 0.2},
}
COMBINERS = ["class_aware", "mean", "ds", "bila"]
ANSWER_MODES = ("label", "proba")
# What probability answers are combined with, as each config says: class-aware with one architecture
# (oneshot.toml; DS reads only the clients' arg-max), DS with mixed ones (hetero.toml: class-aware probabilities of
# the prior's images collapsed onto two or three classes on 2 of 3 seeds, tag combine-class_aware in oneshot.csv).
PROBA_COMBINE = {"homogeneous": "class_aware", "heterogeneous": "ds"}


def mode_overrides(federation: str, mode: str) -> dict[str, object]:
    """What an answer mode changes in a federation's config: nothing for labels (the configs' DS)."""
    return {} if mode == "label" else {"distill.mode": "proba", "query.combine": PROBA_COMBINE[federation]}


KEYS = ["tag", "federation", "strategy", "alpha", "mode", "seed"]


def run_cell(federation: str, strategy: str, alpha: float, mode: str, seed: int, tag: str,
             overrides: dict[str, object]) -> dict[str, object]:
    from fedkd.config import load_config
    from fedkd.federation.plain import run_plain

    cfg = load_config(ROOT / "simulations" / FEDERATIONS[federation], {
        **STRATEGIES[strategy], **mode_overrides(federation, mode), "federation.alpha": alpha, "run.seed": seed,
        **overrides})
    start = time.perf_counter()
    run = run_plain(cfg)
    seconds = time.perf_counter() - start
    refs = run.server_metrics[-1]
    student = run.test_acc[-1]
    fedavg = refs.get("test_acc/fedavg_oneshot", float("nan"))
    return {"tag": tag, "federation": federation, "strategy": strategy, "alpha": alpha, "mode": mode, "seed": seed,
            "test_acc": student, "ensemble": refs["test_acc/ensemble"],
            "ensemble_proba": refs.get("test_acc/ensemble_proba", float("nan")),
            "best_client": refs["test_acc/best_client"], "fedavg_oneshot": fedavg,
            "ensemble_as_taught": refs.get("test_acc/ensemble_as_taught", float("nan")),
            "rho": student / refs["test_acc/ensemble"], "delta_fedavg": student - fedavg, "seconds": seconds}


def client_cells(seeds: list[int], alpha: float) -> list[dict[str, object]]:
    """The clients' combined answer on the test set for every way of training them and every combiner."""
    from fedkd.config import load_config
    from fedkd.federation.answers import AnswerCombiner
    from fedkd.federation.data import client_data, train_test
    from fedkd.federation.local import answer_queries, build_model
    from fedkd.federation.plain import PlainLink
    from fedkd.federation.references import accuracy_of_answers, average_weights
    from fedkd.train import evaluate_accuracy

    rows = []
    for seed in seeds:
        for training, overrides in CLIENT_TRAINING.items():
            cfg = load_config(ROOT / "simulations" / FEDERATIONS["homogeneous"],
                              {"client.val_fraction": 0.0, "client.patience": 0, **overrides, "run.seed": seed,
                               "federation.alpha": alpha})
            pids = list(range(cfg.federation.num_clients))
            link = PlainLink(cfg)
            trained = link.train(1, pids)
            _, test = train_test(cfg)
            x, y = test.tensors()
            examples = [sum(trained.label_counts[p]) for p in pids]
            averaged = average_weights([link.states[p].model for p in pids], examples)
            model = build_model(cfg, (test.channels, test.image_size, test.image_size), test.n_classes)
            model.load_state_dict(averaged)
            rows.append({"seed": seed, "alpha": alpha, "training": training, "mode": "weights",
                         "combine": "fedavg_oneshot", "ensemble": evaluate_accuracy(model, x, y)})
            for mode in ("label", "proba"):
                answers = {p: answer_queries(cfg, client_data(cfg, p), link.states[p], x, mode) for p in pids}
                for method in COMBINERS:
                    combiner = AnswerCombiner(method, test.n_classes)
                    combiner.set_label_counts(trained.label_counts)
                    rows.append({"seed": seed, "alpha": alpha, "training": training, "mode": mode,
                                 "combine": method, "ensemble": accuracy_of_answers(combiner(answers), y)})
            print(training, seed, flush=True)
    return rows


REFERENCES = {"ensemble": "test_acc/ensemble", "ensemble_proba": "test_acc/ensemble_proba",
              "best_client": "test_acc/best_client", "fedavg_oneshot": "test_acc/fedavg_oneshot"}


def remeasure_references(runs: pd.DataFrame, tags: list[str], modes: list[str]) -> pd.DataFrame:
    """The references of ``tags``' rows measured again with today's code, on the same clients: they depend on the
    clients alone (federation, alpha, seed; the mode and combiner for the combined answer), never on the strategy,
    so one round with a token budget re-creates them without redoing the distillation."""
    from fedkd.config import load_config
    from fedkd.federation.plain import run_plain

    runs = runs.copy()
    chosen = runs[runs["tag"].isin(tags) & runs["mode"].isin(modes)]
    for (federation, alpha, mode, seed), rows in chosen.groupby(["federation", "alpha", "mode", "seed"]):
        cfg = load_config(ROOT / "simulations" / FEDERATIONS[federation], {
            **mode_overrides(federation, mode), "federation.alpha": alpha, "run.seed": seed, "distill.budget": 64,
            "aedm.offline_epochs": 1})
        refs = run_plain(cfg).server_metrics[-1]
        for column, name in REFERENCES.items():
            runs.loc[rows.index, column] = refs.get(name, float("nan"))
        print(federation, alpha, mode, seed, refs, flush=True)
    runs["rho"] = runs["test_acc"] / runs["ensemble"]
    runs["delta_fedavg"] = runs["test_acc"] - runs["fedavg_oneshot"]
    return runs


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of every cell."""
    values = ["test_acc", "rho", "delta_fedavg", "fedavg_oneshot", "ensemble", "ensemble_proba", "best_client",
              "seconds"]
    grouped = runs.groupby(KEYS[:-1], sort=True)
    table = grouped[values].agg(["mean", "std"])
    table.columns = [f"{name}_{stat}" for name, stat in table.columns]
    table.insert(0, "seeds", grouped.size())
    return table.reset_index()


def plot(runs: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = summary(runs[(runs["tag"] == "default") & (runs["seed"] < SELECTION_SEED)])  # the reported seeds
    panels = list(cells.groupby(["federation", "mode"], sort=True))
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.2 * max(1, len(panels)), 3.4), squeeze=False)
    for ax, ((federation, mode), rows) in zip(axes[0], panels, strict=False):
        for strategy, group in rows.groupby("strategy"):
            ax.errorbar(group["alpha"], group["test_acc_mean"], group["test_acc_std"], marker="o", capsize=3,
                        label=f"{strategy} (student)")
        first = rows.groupby("alpha").first().reset_index()
        ax.plot(first["alpha"], first["ensemble_mean"], "k--", marker="_", markersize=18,
                label="clients' combined answer")
        if first["fedavg_oneshot_mean"].notna().any():
            ax.plot(first["alpha"], first["fedavg_oneshot_mean"], "k:", marker="x", label="one-shot FedAvg")
        ax.set(title=f"{federation}, {mode} answers", xlabel="Dirichlet alpha", ylabel="test accuracy")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    from fedkd.config import parse_overrides

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--federations", nargs="+", default=list(FEDERATIONS), choices=FEDERATIONS)
    parser.add_argument("--strategies", nargs="+", default=["fedaedm"], choices=STRATEGIES)
    parser.add_argument("--alphas", nargs="+", type=float, default=[0.1, 0.3, 0.5])
    parser.add_argument("--modes", nargs="+", default=list(ANSWER_MODES), choices=ANSWER_MODES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--tag", default="default")
    parser.add_argument("--remeasure", nargs="+", metavar="TAG", default=[],
                        help="measure the references of these tags' rows again (they depend on the clients only)")
    parser.add_argument("--clients", action="store_true", help="measure the clients' defaults instead (seeds 10-12)")
    args = parser.parse_args()
    if args.remeasure:
        remeasure_references(pd.read_csv(CSV), args.remeasure, args.modes).to_csv(CSV, index=False)
        return
    if args.clients:
        RESULTS.mkdir(exist_ok=True)
        rows = pd.DataFrame([r for alpha in args.alphas for r in client_cells([10, 11, 12], alpha)])
        rows.to_csv(RESULTS / "oneshot_clients.csv", index=False)
        print(rows.groupby(["alpha", "mode", "training", "combine"])["ensemble"].mean().unstack().to_string())
        return
    overrides = parse_overrides(args.overrides)
    if overrides and args.tag == "default":
        parser.error("--set changes the cells: name the variant with --tag")
    RESULTS.mkdir(exist_ok=True)
    done = pd.read_csv(CSV) if CSV.exists() else pd.DataFrame(columns=KEYS)
    seen = {tuple(row) for row in done[KEYS].itertuples(index=False)}
    for federation in args.federations:
        for strategy in args.strategies:
            for alpha in args.alphas:
                for mode in args.modes:
                    for seed in args.seeds:
                        if (args.tag, federation, strategy, alpha, mode, seed) in seen:
                            continue
                        row = run_cell(federation, strategy, alpha, mode, seed, args.tag, overrides)
                        print(row, flush=True)
                        done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
                        done.sort_values(KEYS, ignore_index=True).to_csv(CSV, index=False)
    plot(done, RESULTS / "oneshot.png")
    print(summary(done).to_string())


if __name__ == "__main__":
    main()
