"""Global-student test accuracy of the federated strategies over skew, annotator noise and label aggregator.

Every run is ``fedkd run`` on a shipped config of the shared default federation (``simulations/fed_avg.toml``,
``fed_df.toml``, ``fed_tandem.toml``, ``fed_aedm.toml``), changing only ``federation.alpha`` (Dirichlet skew;
100 is close to iid), ``crowd.noise`` (each annotator's wrong-label rate, drawn per annotator from the range),
how each client cleans its labels (``--aggregators``: ``CLEANINGS`` below, ``client.aggregator`` and its options)
and ``run.seed``. The query strategies also log
``test_acc/ensemble``, the clients' combined answer on the test set: the upper reference for a student that
learns only from those answers.

    python benchmarks/federated.py                                          # the full grid (many hours here)
    python benchmarks/federated.py --alphas 0.1 --noises high --seeds 0 1 2   # the headline cell

    python benchmarks/federated.py --combiners --seeds 0 1 2                  # answer combination only

Writes ``benchmarks/results/federated.csv`` (one row per run), ``federated_summary.csv`` (mean and std over
seeds), ``federated.png`` and ``federated.md``. ``--combiners`` instead trains the clients of
``simulations/fed_aedm.toml``'s federation (each its own model, as under a data-free strategy) and measures how
well each way of combining their answers (``query.combine``) classifies the test set, in label and proba
mode: ``federated_combiners.csv`` and ``.md``. Runs are kept under ``--runs``; a finished run is read back,
an interrupted one resumed, so the grid can be filled over several sessions.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from fedkd_benchmarks.result_rows import merge_rows

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIGS = {"fedavg": "fed_avg.toml", "feddf": "fed_df.toml", "fedtandem": "fed_tandem.toml", "fedaedm": "fed_aedm.toml"}
NOISE = {"low": [0.1, 0.2], "high": [0.4, 0.5]}
#: how the clients clean their labels: name -> (client.aggregator, client.aggregator_options). ``bila`` is the
#: shipped configs' setting (no log class prior, Adam steps instead of the default closed-form ones: see
#: simulations/fed_avg.toml); ``bila-prior`` adds BILA's log class prior back (its default outside federations),
#: which on skewed clients pushes rare-class items onto each client's frequent classes
#: (``benchmarks/client_labels.py``); ``bila-worker`` takes the shrinkage centre and ceiling of BILA's default
#: (the per-worker centre, 50) instead of the clients' pooled centre and ceiling of 10.
CLEANINGS: dict[str, tuple[str, dict[str, object]]] = {
    "mv": ("mv", {}),
    "ds": ("ds", {}),
    "bila": ("bila", {"log_prior": False, "m_step": False, "shrink_rule": "moments",
                      "shrink_to": "pooled", "shrinkage": 10.0}),
    "bila-prior": ("bila", {"log_prior": True, "m_step": False, "shrink_rule": "moments",
                            "shrink_to": "pooled", "shrinkage": 10.0}),
    "bila-worker": ("bila", {"log_prior": False, "m_step": False, "shrink_rule": "moments"}),
}
#: the clients' combined answer under each query strategy: the same clients, but feddf asks for probabilities
ENSEMBLE = {"feddf": "ensemble, proba answers", "fedtandem": "ensemble, label answers",
            "fedaedm": "ensemble, label answers"}
COMBINERS = ("mean", "class_aware", "coverage", "mv", "ds", "bila")  # every query.combine choice, aliases left out


def run_one(
    strategy: str, alpha: float, noise: str, aggregator: str, seed: int, runs: Path, extra: list[str]
) -> dict[str, object]:
    """One run's final numbers (read back when its directory already holds the finished run)."""
    import fedkd
    from fedkd.config import load_config, parse_overrides
    from fedkd.runs import read_metrics

    out = runs / f"{strategy}-a{alpha:g}-{noise}-{aggregator}-s{seed}"
    name, options = CLEANINGS[aggregator]
    overrides = {
        "federation.alpha": alpha,
        "crowd.noise": NOISE[noise],
        "client.aggregator": name,
        "client.aggregator_options": {name: options},
        "run.seed": seed,
        "run.name": out.name,
        **parse_overrides(extra),
    }
    started = time.perf_counter()
    refuse_other_config(out, load_config(ROOT / "simulations" / CONFIGS[strategy], overrides).to_dict())
    if (out / "config.toml").exists() and _is_finished(out):
        m = read_metrics(out / "metrics.csv")
    else:
        m = fedkd.run(
            ROOT / "simulations" / CONFIGS[strategy],
            overrides=overrides,
            out=out,
            resume=(out / "config.toml").exists(),
        ).metrics
    server = m[m["client"].isna()]
    rounds = server.query("metric == 'round_seconds'")["value"]
    row = {
        "strategy": strategy,
        "alpha": alpha,
        "noise": noise,
        "aggregator": aggregator,
        "seed": seed,
        "test_acc": _final_or_nan(server, "test_acc"),
        "ensemble_acc": _final_or_nan(server, "test_acc/ensemble"),
        "queries": int(m["queries"].dropna().max()) if m["queries"].notna().any() else 0,
        "round_s_median": float(rounds.iloc[1:].median()) if len(rounds) > 1 else float("nan"),
        "wall_s": float(rounds.sum()),
    }
    print(
        f"{out.name}: test_acc {row['test_acc']:.4f} ensemble {row['ensemble_acc']:.4f} "
        f"({time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    return row


def settings_that_differ(stored: dict, resolved: dict, prefix: str = "") -> list[str]:
    """The settings a run directory's ``config.toml`` holds with another value than the config resolves to now
    (settings added since that run are not in it and are not compared)."""
    differ = []
    for key in stored.keys() & resolved.keys():
        a, b = stored[key], resolved[key]
        if isinstance(a, dict) and isinstance(b, dict):
            differ += settings_that_differ(a, b, f"{prefix}{key}.")
        elif a != b:
            differ.append(f"{prefix}{key}")
    return differ


def refuse_other_config(out: Path, resolved: dict) -> None:
    """A finished run is read back by its directory's name; refuse one made with a config that has changed since
    (a changed default would otherwise be reported under the new name with the old numbers). A directory without
    a run passes."""
    import tomllib

    if not (out / "config.toml").exists():
        return
    differ = settings_that_differ(tomllib.loads((out / "config.toml").read_text()), resolved)
    if differ:
        raise SystemExit(f"{out} holds a run of another config ({', '.join(sorted(differ))} differ from what the "
                         "config resolves to now); move it away to run it again")


def _is_finished(out: Path) -> bool:
    import tomllib

    rounds = tomllib.loads((out / "config.toml").read_text())["federation"]["num_rounds"]
    metrics = out / "metrics.csv"
    if not metrics.exists():
        return False
    done = pd.read_csv(metrics).query("metric == 'test_acc'")["round"]
    return bool(len(done)) and int(done.max()) >= rounds


def _final_or_nan(metrics: pd.DataFrame, name: str) -> float:
    rows = metrics[metrics["metric"] == name]
    return float(rows["value"].iloc[-1]) if len(rows) else float("nan")


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per cell; the clients' combined answer (the upper reference) as rows of its own,
    one per answer mode, since the query strategies train the same clients."""
    keys = ["alpha", "noise", "aggregator"]
    students = runs.groupby([*keys, "strategy"])["test_acc"].agg(["mean", "std", "count"]).reset_index()
    ensemble = (
        runs.dropna(subset=["ensemble_acc"])
        .assign(strategy=lambda r: r["strategy"].map(ENSEMBLE))
        .drop_duplicates([*keys, "strategy", "seed"])
        .groupby([*keys, "strategy"])["ensemble_acc"]
        .agg(["mean", "std", "count"])
        .reset_index()
    )
    return pd.concat([students, ensemble], ignore_index=True).sort_values([*keys, "strategy"]).reset_index(drop=True)


def markdown(summary: pd.DataFrame) -> str:
    """One row per (alpha, noise), one column per strategy x aggregator: ``mean ± std (n)``."""
    cell = summary.assign(
        value=[
            f"{m:.3f} ± {0 if pd.isna(s) else s:.3f} ({n})"
            for m, s, n in zip(summary["mean"], summary["std"], summary["count"], strict=True)
        ]
    )
    table = cell.pivot_table(
        index=["alpha", "noise"], columns=["strategy", "aggregator"], values="value", aggfunc="first"
    ).fillna("–")
    header = ["alpha", "noise", *(f"{s} / {a}" for s, a in table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|---|---" + "|---:" * len(table.columns) + "|"]
    lines += [f"| {alpha:g} | {noise} | " + " | ".join(row) + " |" for (alpha, noise), row in table.iterrows()]
    return "\n".join(lines)


def headline(summary: pd.DataFrame) -> str:
    """The issue's question: in the hardest cell, does a data-free strategy on BILA clients beat FedAvg on MV?"""
    cell = summary.query("alpha == 0.1 and noise == 'high'")
    fedavg = cell.query("strategy == 'fedavg' and aggregator == 'mv'")["mean"]
    free = cell.query("strategy in ['fedtandem', 'fedaedm'] and aggregator == 'bila'")
    if fedavg.empty or free.empty:
        return "alpha 0.1, high noise: not measured yet (needs fedavg/mv and fedtandem or fedaedm/bila)"
    best = free.loc[free["mean"].idxmax()]
    gap = best["mean"] - fedavg.iloc[0]
    verdict = "beats" if gap > 0 else "falls short of"
    return (
        f"alpha 0.1, high noise: best data-free student ({best['strategy']}, BILA clients) {best['mean']:.3f} "
        f"{verdict} FedAvg with majority-vote clients {fedavg.iloc[0]:.3f} by {abs(gap):.3f}"
    )


def plot(summary: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = summary[["alpha", "noise"]].drop_duplicates().values.tolist()
    fig, axes = plt.subplots(1, len(cells), figsize=(4.2 * len(cells), 3.6), squeeze=False, sharey=True)
    for ax, (alpha, noise) in zip(axes[0], cells, strict=True):
        part = summary.query("alpha == @alpha and noise == @noise")
        labels = [f"{s}\n{a}" for s, a in zip(part["strategy"], part["aggregator"], strict=True)]
        ax.bar(range(len(part)), part["mean"], yerr=part["std"].fillna(0), color="tab:blue", alpha=0.8)
        ax.set_xticks(range(len(part)), labels, rotation=70, fontsize=7)
        ax.set_title(f"alpha {alpha:g}, {noise} noise (mean ± std over seeds)", fontsize=9)
        ax.set_ylim(0, 1)
        ax.axhline(0.1, color="grey", lw=0.8, ls=":")
    axes[0][0].set_ylabel("global test accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def compare_combiners(seeds: list[int], extra: list[str]) -> pd.DataFrame:
    """Test accuracy of the clients' combined answer under every ``query.combine`` choice, per seed and mode.

    The online aggregators (clients as annotators) see the test set in query batches of ``distill.batch_size``,
    as they would see queries, and are scored on every batch as it comes.
    """
    import torch

    from fedkd.config import load_config
    from fedkd.federation.answers import AnswerCombiner
    from fedkd.federation.data import client_data, train_test
    from fedkd.federation.local import answer_queries, label_counts, own_model_round

    torch.set_num_threads(1)
    rows = []
    for seed in seeds:
        cfg = load_config(ROOT / "simulations" / CONFIGS["fedaedm"], [f"run.seed={seed}", *extra])
        _, test = train_test(cfg)
        x, y = test.tensors()
        clients = [client_data(cfg, pid) for pid in range(cfg.federation.num_clients)]
        states = [own_model_round(cfg, data, None, cfg.federation.num_rounds) for data in clients]
        counts = {
            data.partition_id: label_counts(state.labels, test.n_classes)
            for data, state in zip(clients, states, strict=True)
        }
        for mode in ("label", "proba"):
            answers = {
                data.partition_id: answer_queries(cfg, data, state, x, mode)
                for data, state in zip(clients, states, strict=True)
            }
            for method in COMBINERS:
                combiner = AnswerCombiner(method, test.n_classes, seed=seed)
                combiner.set_label_counts(counts)
                batches = torch.arange(len(y)).split(cfg.distill.batch_size)
                predicted = torch.cat(
                    [combiner({pid: a[idx] for pid, a in answers.items()}).argmax(1) for idx in batches]
                )
                rows.append(
                    {
                        "seed": seed,
                        "mode": mode,
                        "combine": method,
                        "ensemble_acc": float((predicted == y).float().mean()),
                    }
                )
                print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def combiners_markdown(runs: pd.DataFrame) -> str:
    table = runs.groupby(["combine", "mode"])["ensemble_acc"].agg(["mean", "std"]).unstack("mode")
    lines = ["| combine | label mode | proba mode |", "|---|---:|---:|"]
    lines += [
        f"| {name} | {row[('mean', 'label')]:.3f} ± {row[('std', 'label')]:.3f} | "
        f"{row[('mean', 'proba')]:.3f} ± {row[('std', 'proba')]:.3f} |"
        for name, row in table.iterrows()
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--alphas", nargs="+", type=float, default=[0.1, 0.5, 100.0])
    parser.add_argument("--noises", nargs="+", default=list(NOISE), choices=list(NOISE))
    parser.add_argument("--aggregators", nargs="+", default=["mv", "bila"], choices=list(CLEANINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "benchmark-federated")
    parser.add_argument(
        "--set",
        dest="extra",
        action="append",
        default=[],
        help="an extra override for every run, e.g. --set federation.num_rounds=5",
    )
    parser.add_argument("--combiners", action="store_true", help="compare the ways of combining answers only")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.combiners:
        runs = compare_combiners(args.seeds, args.extra)
        runs.to_csv(RESULTS / "federated_combiners.csv", index=False)
        text = (
            f"# Combining the clients' answers (`query.combine`)\n\nTest accuracy of the combined answer of the "
            f"clients of `simulations/fed_aedm.toml` after its last round "
            f"(seeds {args.seeds}, overrides {args.extra}), "
            f"`python benchmarks/federated.py --combiners`.\n\n{combiners_markdown(runs)}\n"
        )
        (RESULTS / "federated_combiners.md").write_text(text)
        print(text)
        return

    rows = [
        run_one(strategy, alpha, noise, aggregator, seed, args.runs, args.extra)
        for alpha in args.alphas
        for noise in args.noises
        for aggregator in args.aggregators
        for seed in args.seeds
        for strategy in args.strategies
    ]
    runs = merge_rows(pd.DataFrame(rows), RESULTS / "federated.csv",
                      ["strategy", "alpha", "noise", "aggregator", "seed"])
    runs.to_csv(RESULTS / "federated.csv", index=False)
    summary = summarise(runs)
    summary.to_csv(RESULTS / "federated_summary.csv", index=False)
    plot(summary, RESULTS / "federated.png")
    text = (
        f"# Federated strategies: global test accuracy\n\n`python benchmarks/federated.py` "
        f"(runs under {args.runs.name}); mean ± std (seeds) of the final `test_acc`.\n\n"
        f"{markdown(summary)}\n\n{headline(summary)}\n"
    )
    (RESULTS / "federated.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
