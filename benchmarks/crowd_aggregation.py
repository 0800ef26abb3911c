"""Crowd-label aggregation: fedkd's aggregators and crowd-kit's against gold, on real and synthetic crowds.

Crowds: every bundled real set, the synthetic regimes of :mod:`fedkd.data.crowd_regimes` (each drawn
``--regime-draws`` times, seeds 0, 1, ...) and the thesis-style bimodal crowd (10 classes, 10 annotators,
50,000 tasks). On each it measures accuracy on the gold tasks and wall time of:

- ``mv``: majority vote, ties broken by a seeded hash of (seed, task) (the same online and offline);
- ``ds``: Dawid-Skene EM over all labels at once (offline); ``bila-offline``: BILA fitted on all labels as one chunk;
- ``ds-stream``: Dawid-Skene streaming (incremental EM), online;
- ``bila`` and ``bila-nolp``: BILA online with its defaults, predicting with and without the log class prior;
- ``ck-*``: crowd-kit 1.4.2 offline, when installed (the ``bench`` extra): ``mv``, ``wawa``, ``zbs``,
  ``onecoin-ds``, ``ds`` with their published defaults, and ``glad`` and ``mace`` on crowds of at most
  ``--slow-peer-labels`` labels (they take 20-260 s per real set here; the shared data README has them on all);

online methods in chunks of 10 % of the tasks and of a fixed 500 tasks, in file (generated) order, each task
keeping the label emitted when its chunk arrived; three seeds for the stochastic ones (mv ties, BILA) on the
real sets, one per draw on the regimes. Then the speed workload: online BILA, streaming DS and MV on ~215,000
labels from ~37,000 workers (:func:`fedkd.data.crowd_regimes.simulate_large_crowd`), in 10 % chunks and in
500-task chunks, timing every chunk.

Writes ``results/crowd_aggregation.csv`` (one row per run), ``results/crowd_aggregation_chunks.csv``
(per chunk: seconds and cumulative accuracy), ``results/crowd_aggregation_large.csv`` (the speed workload,
per chunk), ``results/crowd_aggregation.md`` (the tables) and the plots ``crowd_aggregation_curves.png`` and
``crowd_aggregation_chunk_time.png``.

    python benchmarks/crowd_aggregation.py [--sets dog,web] [--regimes one_coin] [--seeds 3] [--synthetic-tasks 50000]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fedkd.aggregation import build_aggregator
from fedkd.data.crowd import CROWD_SETS, chunk_tasks, gold_accuracy, load_crowd, simulate_bimodal_crowd
from fedkd.data.crowd_regimes import REGIMES, simulate_large_crowd, simulate_regime

RESULTS = Path(__file__).resolve().parent / "results"
# crowd-kit's offline DS mean over the eight real sets, from ../shared/data/crowd/README.md (%).
CROWDKIT_DS_REFERENCE = {"bluebird": 88.9, "dog": 84.3, "rte": 92.8, "web": 82.9, "sp": 91.5, "product": 94.0,
                         "face": 64.0, "trec": 70.2}
ONLINE = {"ds-stream": ("ds", {}), "bila": ("bila", {}), "bila-nolp": ("bila", {"log_prior": False})}
OFFLINE = {"mv": ("mv", {}), "ds": ("ds", {}), "bila-offline": ("bila", {})}
STOCHASTIC = {"mv", "bila", "bila-nolp", "bila-offline"}
SLOW_PEERS = {"ck-glad", "ck-mace"}


@dataclass(frozen=True)
class Crowd:
    name: str
    labels: pd.DataFrame
    gold: pd.DataFrame
    n_classes: int
    kind: str  # "real", "regime" or "synthetic"
    draw: int = 0

    @property
    def real(self) -> bool:
        return self.kind == "real"


def crowds(names: list[str], regimes: list[str], draws: int, synthetic_tasks: int) -> Iterator[Crowd]:
    for name in names:
        s = load_crowd(name)
        yield Crowd(name, s.labels, s.gold, s.n_classes, "real")
    for name in regimes:
        for draw in range(draws):
            c = simulate_regime(name, draw)
            yield Crowd(name, c.labels, c.gold, c.n_classes, "regime", draw)
    if synthetic_tasks > 0:
        labels, gold, _ = simulate_bimodal_crowd(n_tasks=synthetic_tasks)
        yield Crowd("synthetic", labels, gold, 10, "synthetic")


def chunkings(df: pd.DataFrame) -> dict[str, list[pd.DataFrame]]:
    return {"10%": chunk_tasks(df, n_chunks=10), "500": chunk_tasks(df, chunk_size=500)}


def run_offline(crowd: Crowd, method: str, seed: int) -> dict:
    name, options = OFFLINE[method]
    agg = build_aggregator(name, crowd.n_classes, seed=seed, **options)
    start = time.perf_counter()
    labels = agg.fit_predict(crowd.labels)
    seconds = time.perf_counter() - start
    return {"accuracy": gold_accuracy(labels, crowd.gold)[0], "seconds": seconds}


def run_online(crowd: Crowd, method: str, chunks: list[pd.DataFrame], seed: int) -> tuple[dict, list[dict]]:
    """Feed the chunks one by one; a task keeps the label emitted when its chunk arrived."""
    name, options = ONLINE[method]
    agg = build_aggregator(name, crowd.n_classes, seed=seed, **options)
    emitted, per_chunk, total = [], [], 0.0
    for i, chunk in enumerate(chunks):
        start = time.perf_counter()
        emitted.append(agg.partial_fit(chunk).predict(chunk))
        seconds = time.perf_counter() - start
        total += seconds
        so_far = pd.concat(emitted)
        covered = crowd.gold["task"].isin(so_far.index).any()
        acc = gold_accuracy(so_far, crowd.gold)[0] if covered else np.nan
        per_chunk.append({"chunk": i, "tasks_seen": len(so_far), "seconds": seconds, "cumulative_accuracy": acc})
    return {"accuracy": gold_accuracy(pd.concat(emitted), crowd.gold)[0], "seconds": total}, per_chunk


def crowdkit_peers() -> dict[str, Callable[[], object]]:
    """crowd-kit's offline aggregators with their published defaults, when the ``bench`` extra is installed.

    Its Wawa and ZBS call scikit-learn's ``check_is_fitted``, which fails under scikit-learn >= 1.6 (it wants
    ``__sklearn_tags__``); here they get a check of the one attribute it looks for, nothing else changes.
    """
    if importlib.util.find_spec("crowdkit") is None:
        return {}
    from crowdkit.aggregation import GLAD, MACE, DawidSkene, MajorityVote, OneCoinDawidSkene, Wawa, ZeroBasedSkill
    from crowdkit.aggregation.classification import wawa, zero_based_skill

    def check_is_fitted(estimator: object, attributes: str) -> None:
        if not hasattr(estimator, attributes):
            raise AttributeError(f"{type(estimator).__name__} is not fitted: no {attributes}")

    wawa.check_is_fitted = zero_based_skill.check_is_fitted = check_is_fitted
    return {"ck-mv": MajorityVote, "ck-wawa": Wawa, "ck-zbs": ZeroBasedSkill, "ck-onecoin-ds": OneCoinDawidSkene,
            "ck-ds": DawidSkene, "ck-glad": GLAD, "ck-mace": MACE}


def run_peer(crowd: Crowd, make: Callable[[], object]) -> dict:
    start = time.perf_counter()
    labels = make().fit_predict(crowd.labels)
    seconds = time.perf_counter() - start
    return {"accuracy": gold_accuracy(labels.astype(np.int64), crowd.gold)[0], "seconds": seconds}


def measure(crowd: Crowd, seeds: int, slow_peer_labels: int, peers: bool = True) -> tuple[list[dict], list[dict]]:
    base = {"dataset": crowd.name, "real": crowd.real, "kind": crowd.kind, "draw": crowd.draw,
            "labels": len(crowd.labels)}
    seed_list = list(range(seeds)) if crowd.real else [crowd.draw]
    rows, chunk_rows = [], []
    for method in OFFLINE:
        for seed in seed_list if method in STOCHASTIC else seed_list[:1]:
            rows.append({**base, "method": method, "chunking": "offline", "seed": seed,
                         **run_offline(crowd, method, seed)})
    for peer, make in (crowdkit_peers() if peers else {}).items():
        if peer in SLOW_PEERS and len(crowd.labels) > slow_peer_labels:
            continue
        rows.append({**base, "method": peer, "chunking": "offline", "seed": 0, **run_peer(crowd, make)})
    for chunking, chunks in chunkings(crowd.labels).items():
        for method in ONLINE:
            for seed in seed_list if method in STOCHASTIC else seed_list[:1]:
                summary, per_chunk = run_online(crowd, method, chunks, seed)
                rows.append({**base, "method": method, "chunking": chunking, "seed": seed, **summary})
                chunk_rows += [{**base, "method": method, "chunking": chunking, "seed": seed, **c} for c in per_chunk]
    return rows, chunk_rows


def measure_large(n_workers: int) -> pd.DataFrame:
    """The speed workload: per-chunk seconds of online BILA, streaming DS and MV, 10 % and 500-task chunks, as wall
    time and as the process's CPU time (which other jobs on a shared machine do not inflate)."""
    crowd = simulate_large_crowd(n_workers=n_workers, n_tasks=round(n_workers * 43 / 39))
    rows = []
    for chunking, chunks in chunkings(crowd.labels).items():
        for method, (name, options) in {"mv": ("mv", {}), **ONLINE}.items():
            if method == "bila-nolp":
                continue
            agg = build_aggregator(name, crowd.n_classes, seed=0, **options)
            emitted = []
            for i, chunk in enumerate(chunks):
                start, cpu = time.perf_counter(), time.process_time()
                emitted.append(agg.partial_fit(chunk).predict(chunk))
                rows.append({"method": method, "chunking": chunking, "chunk": i, "seconds": time.perf_counter() - start,
                             "cpu_seconds": time.process_time() - cpu, "labels": len(crowd.labels),
                             "workers": crowd.labels["worker"].nunique()})
            accuracy = gold_accuracy(pd.concat(emitted), crowd.gold)[0]
            for row in rows[-len(chunks):]:
                row["accuracy"] = accuracy
    return pd.DataFrame(rows)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds and regime draws: accuracy (%), seconds, labels per second per (dataset, method, chunking)."""
    runs = runs.assign(column=runs["method"] + np.where(runs["chunking"] == "offline", "", " @" + runs["chunking"]))
    grouped = runs.groupby(["dataset", "kind", "column"], sort=False)
    summary = grouped.agg(accuracy=("accuracy", "mean"), acc_std=("accuracy", "std"), seconds=("seconds", "mean"),
                          labels=("labels", "mean")).reset_index()
    summary["real"] = summary["kind"] == "real"
    summary["accuracy"] *= 100
    summary["acc_std"] *= 100
    summary["labels_per_s"] = summary["labels"] / summary["seconds"]
    return summary


def accuracy_table(summary: pd.DataFrame, kinds: tuple[str, ...], mean_label: str) -> list[str]:
    part = summary[summary["kind"].isin(kinds)]
    acc = part.pivot(index="dataset", columns="column", values="accuracy").reindex(part["dataset"].unique())
    acc = acc[list(summary["column"].unique())]
    averaged = [d for d in acc.index if d != "synthetic"]
    acc.loc[mean_label] = acc.loc[averaged].mean(skipna=False)
    lines = ["| dataset | " + " | ".join(acc.columns) + " |", "|---" + "|---:" * len(acc.columns) + "|"]
    lines += [f"| {name} | " + " | ".join("–" if np.isnan(v) else f"{v:.1f}" for v in row) + " |"
              for name, row in acc.iterrows()]
    return lines


def markdown_tables(summary: pd.DataFrame, chunk_runs: pd.DataFrame, large: pd.DataFrame) -> str:
    lines = ["Accuracy on gold (%). `@10%`/`@500`: online, chunks of 10 % of the tasks / of 500 tasks in file order, "
             "each task keeping the label emitted when its chunk arrived. `mv`: ties broken by a seeded hash of "
             "(seed, task id, class). `ds`: fedkd's offline EM; `ds-stream`: its incremental EM. `bila`: the default "
             "(see `bila_defaults.md`), predicting with the log class prior; `bila-nolp`: without it; "
             "`bila-offline`: all labels as one chunk. `ck-*`: crowd-kit 1.4.2 offline with its defaults "
             "(`–`: GLAD and MACE not run on crowds of more labels than the cap).", "",
             "**The 8 bundled real sets** (mean over 3 seeds for mv and BILA):", "",
             *accuracy_table(summary, ("real",), "mean (real sets)"), "",
             f"crowd-kit 1.4.2 offline Dawid-Skene, mean over the real sets (shared README): "
             f"{np.mean(list(CROWDKIT_DS_REFERENCE.values())):.2f} %.", ""]
    if (summary["kind"] != "real").any():
        lines += ["**Synthetic regimes** (`fedkd.data.crowd_regimes`; mean over the draws, each with its own seed) and "
                  "the bimodal crowd (`synthetic`, not in the mean):", "",
                  *accuracy_table(summary, ("regime", "synthetic"), "mean (regimes)"), ""]
    speed = summary.groupby("column", sort=False)[["labels", "seconds"]].sum()
    speed["labels/s"] = speed["labels"] / speed["seconds"]
    lines += ["Throughput over all crowds (labels / s, mean over seeds):", "",
              "| method | labels/s | total seconds |", "|---|---:|---:|"]
    lines += [f"| {name} | {row['labels/s']:,.0f} | {row['seconds']:.1f} |" for name, row in speed.iterrows()]
    growth = chunk_growth(chunk_runs)
    if not growth.empty:
        lines += ["", "Seconds per chunk (partial_fit + predict) on the largest real set, in the first and last "
                  "quarter of the chunks after the first (which carries BILA's warm-up): does it grow with the chunks "
                  "seen?", "",
                  "| dataset | method | chunking | chunks | first quarter s/chunk | last quarter s/chunk |",
                  "|---|---|---|---:|---:|---:|"]
        lines += [f"| {r.dataset} | {r.method} | {r.chunking} | {r.chunks} | {r.first:.3f} | {r.last:.3f} |"
                  for r in growth.itertuples()]
    if not large.empty:
        lines += ["", f"**The speed workload**: {large['labels'].iloc[0]:,} labels from {large['workers'].iloc[0]:,} "
                  f"workers (binary, mixed skill, heavy-tailed activity: most workers give a handful of labels), "
                  f"online, one process, one thread:", "",
                  "| method | chunking | chunks | total s (CPU s) | 1st quarter s/chunk | last quarter | acc. % |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for (method, chunking), part in large.groupby(["method", "chunking"], sort=False):
            later = part[part["chunk"] > 0]["seconds"]
            quarter = max(1, len(later) // 4)
            lines.append(f"| {method} | {chunking} | {len(part)} | {part['seconds'].sum():.2f} "
                         f"({part['cpu_seconds'].sum():.2f}) | "
                         f"{later.iloc[:quarter].mean():.3f} | {later.iloc[-quarter:].mean():.3f} | "
                         f"{100 * part['accuracy'].iloc[0]:.1f} |")
    return "\n".join(lines) + "\n"


def chunk_growth(chunk_runs: pd.DataFrame) -> pd.DataFrame:
    """Mean seconds per chunk in the first and last quarter of the chunks after the first, for the largest real set."""
    real = chunk_runs[chunk_runs["real"]]
    if real.empty:
        return pd.DataFrame()
    largest = real.loc[real["labels"].idxmax(), "dataset"]
    rows = []
    for (method, chunking), part in real[real["dataset"] == largest].groupby(["method", "chunking"], sort=False):
        per_chunk = part[part["chunk"] > 0].groupby("chunk")["seconds"].mean()
        if per_chunk.empty:
            continue
        quarter = max(1, len(per_chunk) // 4)
        rows.append({"dataset": largest, "method": method, "chunking": chunking, "chunks": len(per_chunk),
                     "first": per_chunk.iloc[:quarter].mean(), "last": per_chunk.iloc[-quarter:].mean()})
    return pd.DataFrame(rows)


def plot(chunk_runs: pd.DataFrame, runs: pd.DataFrame, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(chunk_runs["dataset"].unique())
    cols = min(3, len(names))
    n_rows = -(-len(names) // cols)
    fig, axes = plt.subplots(n_rows, cols, figsize=(4.2 * cols, 3.2 * n_rows), squeeze=False)
    ten = chunk_runs[chunk_runs["chunking"] == "10%"]
    for ax, name in zip(axes.flat, names, strict=False):
        part = ten[ten["dataset"] == name]
        for method, curve in part.groupby("method", sort=False):
            mean = curve.groupby("chunk")["cumulative_accuracy"].mean() * 100
            ax.plot(mean.index + 1, mean.to_numpy(), marker="o", ms=3, label=method)
        mv = runs[(runs["dataset"] == name) & (runs["method"] == "mv")]["accuracy"].mean() * 100
        ds = runs[(runs["dataset"] == name) & (runs["method"] == "ds")]["accuracy"].mean() * 100
        ax.axhline(mv, color="grey", ls=":", label="mv (final)")
        ax.axhline(ds, color="black", ls="--", lw=0.8, label="ds offline")
        ax.set_title(name)
        ax.set_xlabel("chunks seen (10 % of tasks each)")
        ax.set_ylabel("accuracy so far (%)")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "crowd_aggregation_curves.png", dpi=110)
    plt.close(fig)

    growth = chunk_runs[(chunk_runs["chunking"] == "500") & chunk_runs["real"]]
    if growth.empty:
        return
    largest = growth.loc[growth["labels"].idxmax(), "dataset"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for method, part in growth[growth["dataset"] == largest].groupby("method", sort=False):
        per_chunk = part.groupby("chunk")["seconds"].mean() * 1000
        ax.plot(per_chunk.index + 1, per_chunk.to_numpy(), marker=".", label=method)
    ax.set_title(f"{largest}: time per chunk of 500 tasks")
    ax.set_xlabel("chunk")
    ax.set_ylabel("ms (partial_fit + predict)")
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "crowd_aggregation_chunk_time.png", dpi=110)
    plt.close(fig)


def acceptance(summary: pd.DataFrame, large: pd.DataFrame) -> list[str]:
    """The issue's targets, checked on this run's numbers."""
    acc = summary.pivot(index="dataset", columns="column", values="accuracy")
    real = list(summary.loc[summary["real"], "dataset"].unique())
    regimes = list(summary.loc[summary["kind"] == "regime", "dataset"].unique())
    lines = []
    for chunking in ("10%", "500"):
        col = f"bila @{chunking}"
        if col not in acc:
            continue
        if real:
            losers = [d for d in real if acc.loc[d, col] < acc.loc[d, "mv"]]
            mean, ds = acc.loc[real, col].mean(), acc.loc[real, "ds"].mean()
            ref = np.mean([CROWDKIT_DS_REFERENCE[d] for d in real])
            lines.append(f"real sets, BILA @{chunking}: at or above mv on {len(real) - len(losers)}/{len(real)}"
                         f"{' (not on ' + ', '.join(losers) + ')' if losers else ''}; mean {mean:.2f} % vs offline DS "
                         f"{ds:.2f} % (fedkd) / {ref:.2f} % (crowd-kit) -> "
                         f"{'PASS' if mean >= max(ds, ref) else 'FAIL'}")
        if regimes:
            losers = [d for d in regimes if acc.loc[d, col] < acc.loc[d, "mv"]]
            mean, stream = acc.loc[regimes, col].mean(), acc.loc[regimes, f"ds-stream @{chunking}"].mean()
            lines.append(f"regimes, BILA @{chunking}: at or above mv in {len(regimes) - len(losers)}/{len(regimes)}"
                         f"{' (not in ' + ', '.join(losers) + ')' if losers else ''}; mean {mean:.2f} % vs streaming "
                         f"DS {stream:.2f} % -> {'PASS' if not losers and mean > stream else 'FAIL'}")
    if not large.empty:
        bila = large[(large["method"] == "bila") & (large["chunking"] == "10%")]
        seconds, cpu = bila["seconds"].sum(), bila["cpu_seconds"].sum()
        lines.append(f"speed: online BILA on {bila['labels'].iloc[0]:,} labels from {bila['workers'].iloc[0]:,} "
                     f"workers in 10 % chunks: {seconds:.2f} s wall, {cpu:.2f} s CPU -> "
                     f"{'PASS' if seconds < 10 else 'FAIL'} (wall) / {'PASS' if cpu < 10 else 'FAIL'} (CPU)")
    return lines


README_COLUMNS = {"mv": "MV", "ds": "DS offline", "ck-ds": "crowd-kit DS", "ck-wawa": "crowd-kit Wawa",
                  "ck-onecoin-ds": "crowd-kit one-coin DS", "ds-stream @10%": "DS stream @10%",
                  "bila @10%": "**BILA @10%**", "bila @500": "BILA @500", "bila-offline": "BILA offline"}


def readme_tables(summary: pd.DataFrame, large: pd.DataFrame) -> str:
    """The README's tables: the main columns for the real sets and for the regimes, with their means."""
    acc = summary.pivot(index="dataset", columns="column", values="accuracy")
    columns = [c for c in README_COLUMNS if c in acc.columns]
    lines = []
    for kind, label in (("real", "mean (8 real sets)"), ("regime", "mean (7 regimes)")):
        names = list(summary.loc[summary["kind"] == kind, "dataset"].unique())
        if not names:
            continue
        part = acc.loc[names, columns]
        part.loc[f"**{label}**"] = part.mean()
        lines += ["| dataset | " + " | ".join(README_COLUMNS[c] for c in columns) + " |",
                  "|---" + "|---:" * len(columns) + "|"]
        lines += [f"| {name} | " + " | ".join(f"{v:.1f}" for v in row) + " |" for name, row in part.iterrows()]
        lines.append("")
    if not large.empty:
        bila = large[(large["method"] == "bila")]
        wall, cpu = bila.groupby("chunking")["seconds"].sum(), bila.groupby("chunking")["cpu_seconds"].sum()
        lines.append(f"Speed workload ({large['labels'].iloc[0]:,} labels, {large['workers'].iloc[0]:,} workers): "
                     f"online BILA {wall.get('10%', np.nan):.1f} s wall / {cpu.get('10%', np.nan):.1f} s CPU in 10 % "
                     f"chunks, {wall.get('500', np.nan):.1f} s / {cpu.get('500', np.nan):.1f} s in 500-task chunks.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(CROWD_SETS), help="comma-separated bundled sets (default: all)")
    parser.add_argument("--regimes", default=",".join(REGIMES), help="comma-separated synthetic regimes (default: all)")
    parser.add_argument("--regime-draws", type=int, default=3, help="draws of each regime (seeds 0, 1, ...)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--synthetic-tasks", type=int, default=50_000, help="0 to skip the bimodal crowd")
    parser.add_argument("--slow-peer-labels", type=int, default=6_000,
                        help="run crowd-kit's GLAD and MACE only on crowds of at most this many labels")
    parser.add_argument("--large-workers", type=int, default=39_000,
                        help="workers drawn for the speed workload (about 95 %% give labels); 0 to skip it")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--tables-only", action="store_true", help="rewrite the markdown from the CSVs in --out")
    parser.add_argument("--no-crowdkit", action="store_true", help="leave out crowd-kit's aggregators")
    parser.add_argument("--only-large", action="store_true",
                        help="measure only the speed workload, then rewrite the markdown from the CSVs in --out")
    args = parser.parse_args(argv)
    if args.only_large:
        torch.set_num_threads(1)
        measure_large(args.large_workers).to_csv(args.out / "crowd_aggregation_large.csv", index=False)
    if args.tables_only or args.only_large:
        write_tables(args.out, pd.read_csv(args.out / "crowd_aggregation.csv"),
                     pd.read_csv(args.out / "crowd_aggregation_chunks.csv"),
                     pd.read_csv(args.out / "crowd_aggregation_large.csv"), elapsed=None)
        return
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows, chunk_rows = [], []
    names = [n for n in args.sets.split(",") if n]
    regimes = [n for n in args.regimes.split(",") if n]
    for crowd in crowds(names, regimes, args.regime_draws, args.synthetic_tasks):
        r, c = measure(crowd, args.seeds, args.slow_peer_labels, peers=not args.no_crowdkit)
        rows += r
        chunk_rows += c
        print(f"{crowd.name} (draw {crowd.draw}): done after {time.perf_counter() - start:.0f} s", flush=True)
    large = measure_large(args.large_workers) if args.large_workers > 0 else pd.DataFrame()
    runs, chunk_runs = pd.DataFrame(rows), pd.DataFrame(chunk_rows)
    runs.to_csv(args.out / "crowd_aggregation.csv", index=False)
    chunk_runs.to_csv(args.out / "crowd_aggregation_chunks.csv", index=False)
    if not large.empty:
        large.to_csv(args.out / "crowd_aggregation_large.csv", index=False)
    write_tables(args.out, runs, chunk_runs, large, elapsed=time.perf_counter() - start)
    plot(chunk_runs, runs, args.out)


def write_tables(out: Path, runs: pd.DataFrame, chunk_runs: pd.DataFrame, large: pd.DataFrame,
                 elapsed: float | None) -> None:
    """``crowd_aggregation.md`` (every table and the acceptance checks) and ``crowd_aggregation_readme.md`` (the
    README's tables and the same checks)."""
    summary = summarise(runs)
    table = markdown_tables(summary, chunk_runs, large)
    checks = acceptance(summary, large)
    timing = "" if elapsed is None else f"\n\nWall time of the benchmark: {elapsed:.0f} s."
    (out / "crowd_aggregation.md").write_text(table + "\n" + "\n".join(f"- {line}" for line in checks) + timing + "\n")
    readme = readme_tables(summary, large) + "\nThe issue's checks on this run:\n\n" + "".join(f"- {c}\n"
                                                                                                for c in checks)
    (out / "crowd_aggregation_readme.md").write_text(readme)
    print(table)
    print("\n".join(checks))
    print(f"wrote {out}/crowd_aggregation*.{{csv,md,png}}")

if __name__ == "__main__":
    main()
