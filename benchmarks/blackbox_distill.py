"""Accuracy per query: TandemGAN (label, proba), DFME (label, proba), random noise and real-data KD.

Every method runs through ``fedkd run`` with the shipped config of its dataset
(``simulations/tandemgan_mnist.toml``, ``simulations/tandemgan_digits28.toml``), changing only
``distill.method``, ``distill.mode``, ``distill.budget`` and ``run.seed``: same teacher, student,
optimizer, batch and budget. Each run's test accuracy is interpolated onto a common grid of query
counts, then averaged over seeds.

    python benchmarks/blackbox_distill.py --budget-for digits28=400000   # as in the README (~3 h here)
    python benchmarks/blackbox_distill.py --budget 100000 --seeds 0 --datasets digits28   # a quick look

Writes ``benchmarks/results/blackbox_curves.csv`` (one row per run and grid point),
``blackbox_summary.csv``, ``blackbox_curves.png`` and ``blackbox_distill.md``. Runs are kept under
``--runs`` and a finished one is not run again, so an interrupted benchmark continues where it stopped.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
VARIANTS: tuple[tuple[str, str], ...] = (
    ("tandemgan", "label"), ("tandemgan", "proba"), ("dfme", "label"), ("dfme", "proba"),
    ("random", "label"), ("real", "label"),
)
CONFIGS = {"mnist5k": "tandemgan_mnist.toml", "digits28": "tandemgan_digits28.toml"}


def run_one(dataset: str, method: str, mode: str, seed: int, budget: int, eval_every: int, runs: Path) -> pd.DataFrame:
    """One run's metrics (resumed or reused when its directory already holds it)."""
    import fedkd

    out = runs / f"{dataset}-{method}-{mode}-b{budget}-s{seed}"
    overrides = {"distill.method": method, "distill.mode": mode, "distill.budget": budget,
                 "distill.eval_every": eval_every, "run.seed": seed, "run.name": out.name}
    started = time.perf_counter()
    result = fedkd.run(ROOT / "simulations" / CONFIGS[dataset], overrides=overrides, out=out,
                       resume=(out / "config.toml").exists())
    print(f"{out.name}: test_acc {result.final('test_acc'):.4f} ({time.perf_counter() - started:.0f} s)", flush=True)
    return result.metrics


def curve(metrics: pd.DataFrame, grid: np.ndarray) -> dict[str, np.ndarray]:
    """test_acc and fidelity interpolated at ``grid`` query counts (the last value held past the run's end)."""
    out = {}
    for metric in ("test_acc", "fidelity"):
        rows = metrics[metrics["metric"] == metric]
        out[metric] = np.interp(grid, rows["queries"].astype(float), rows["value"].astype(float))
    return out


def first_reaching(grid: np.ndarray, values: np.ndarray, target: float) -> float:
    hits = np.flatnonzero(values >= target)
    return float(grid[hits[0]]) if len(hits) else float("nan")


def summarise(curves: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and method: final accuracy and fidelity (mean, std over seeds), queries to 90 % of teacher, speed."""
    final = curves[curves["queries"] == curves.groupby("dataset")["queries"].transform("max")]
    rows = []
    for (dataset, method), group in final.groupby(["dataset", "method"], sort=False):
        teacher = group["teacher_acc"].iloc[0]
        reach = []
        for _, per_seed in curves[(curves["dataset"] == dataset) & (curves["method"] == method)].groupby("seed"):
            reach.append(first_reaching(per_seed["queries"].to_numpy(), per_seed["test_acc"].to_numpy(), 0.9 * teacher))
        speed = runs[(runs["dataset"] == dataset) & (runs["method"] == method)]
        rows.append({
            "dataset": dataset, "method": method, "budget": int(group["queries"].iloc[0]), "teacher_acc": teacher,
            "test_acc_mean": group["test_acc"].mean(), "test_acc_std": group["test_acc"].std(ddof=1),
            "fidelity_mean": group["fidelity"].mean(), "fidelity_std": group["fidelity"].std(ddof=1),
            "relative_acc": group["test_acc"].mean() / teacher,
            "queries_to_90pct_teacher": np.nanmedian(reach) if not np.isnan(reach).all() else float("nan"),
            "seeds_reaching_90pct": int(np.sum(~np.isnan(reach))), "seeds": len(group),
            "queries_per_second": speed["queries_per_second"].mean(),
            "student_steps_per_second": speed["student_steps_per_second"].mean(),
            "share_teacher": speed["share_teacher"].mean(), "share_generator": speed["share_generator"].mean(),
            "share_student": speed["share_student"].mean(), "wall_seconds": speed["wall_seconds"].mean(),
        })
    return pd.DataFrame(rows)


def plot(curves: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(curves["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.2), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        data = curves[curves["dataset"] == dataset]
        for method, group in data.groupby("method", sort=False):
            stats = group.groupby("queries")["test_acc"].agg(["mean", "std"]).fillna(0.0)
            q = stats.index.to_numpy() / 1e3
            ax.plot(q, stats["mean"], label=method)
            ax.fill_between(q, stats["mean"] - stats["std"], stats["mean"] + stats["std"], alpha=0.2)
        teacher = data["teacher_acc"].iloc[0]
        ax.axhline(teacher, color="black", lw=0.8, ls="--", label="teacher")
        ax.axhline(0.9 * teacher, color="grey", lw=0.8, ls=":", label="90 % of teacher")
        ax.set(title=f"{dataset}: student test accuracy", xlabel="queries (thousands)", ylabel="test accuracy",
               ylim=(0, 1))
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(summary: pd.DataFrame, seeds: list[int], loop_minutes: float) -> str:
    lines = [
        "Black-box distillation of a LeNet-5 teacher into a LeNet-5 student at the query budget in the table, "
        f"seeds {', '.join(map(str, seeds))} (mean ± std). `method/mode`: `label` = the teacher answers class "
        "indices only, "
        "`proba` = probabilities. `real/label` is the reference with real unlabeled images from the teacher's "
        f"training split. All runs together spent {loop_minutes:.0f} min in their distillation loops on a shared "
        "2-core machine, one thread per run (evaluation and start-up not counted).",
        "",
        "| dataset | budget | method/mode | teacher acc | student test acc | fidelity | % of teacher "
        "| queries to 90 % of teacher | queries/s | student steps/s | time teacher / generator / student |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary.itertuples():
        reach = "—"
        if not np.isnan(row.queries_to_90pct_teacher):
            reach = f"{row.queries_to_90pct_teacher / 1e3:,.0f}k ({row.seeds_reaching_90pct}/{row.seeds})"
        lines.append(
            f"| {row.dataset} | {row.budget / 1e3:,.0f}k | {row.method} | {row.teacher_acc:.3f} "
            f"| {row.test_acc_mean:.3f} ± {row.test_acc_std:.3f} "
            f"| {row.fidelity_mean:.3f} ± {row.fidelity_std:.3f} | {100 * row.relative_acc:.0f} % | {reach} "
            f"| {row.queries_per_second:,.0f} | {row.student_steps_per_second:.1f} "
            f"| {100 * row.share_teacher:.0f} / {100 * row.share_generator:.0f} / {100 * row.share_student:.0f} % |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--budget", type=int, default=1_000_000, help="queries per run")
    parser.add_argument("--budget-for", nargs="+", default=[], metavar="DATASET=N",
                        help="a different budget for a dataset, e.g. digits28=400000")
    parser.add_argument("--eval-every", type=int, default=25_000)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=[f"{m}/{mode}" for m, mode in VARIANTS],
                        help="method/mode pairs, e.g. tandemgan/label dfme/proba")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "blackbox_bench")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)

    budgets = {dataset: args.budget for dataset in args.datasets}
    for item in args.budget_for:
        dataset, _, n = item.partition("=")
        if dataset not in budgets or not n.isdigit():
            parser.error(f"--budget-for {item!r}: expected DATASET=N with DATASET one of {args.datasets}")
        budgets[dataset] = int(n)
    curve_rows, run_rows = [], []
    for dataset in args.datasets:
        grid = np.arange(0, budgets[dataset] + 1, args.eval_every)
        for seed in args.seeds:
            for variant in args.variants:
                method, mode = variant.split("/")
                metrics = run_one(dataset, method, mode, seed, budgets[dataset], args.eval_every, args.runs)
                teacher = float(metrics.loc[metrics["metric"] == "teacher_acc", "value"].iloc[0])
                values = curve(metrics, grid)
                for i, q in enumerate(grid):
                    curve_rows.append({"dataset": dataset, "method": variant, "seed": seed, "queries": int(q),
                                       "teacher_acc": teacher, "test_acc": values["test_acc"][i],
                                       "fidelity": values["fidelity"][i]})
                last = metrics.groupby("metric")["value"].last()
                parts = {p: last[f"seconds/{p}"] for p in ("teacher", "generator", "student")}
                total = sum(parts.values())
                run_rows.append({"dataset": dataset, "method": variant, "seed": seed,
                                 "queries_per_second": last["queries_per_second"],
                                 "student_steps_per_second": last["student_steps_per_second"],
                                 "wall_seconds": total, **{f"share_{p}": v / total for p, v in parts.items()}})
    curves, runs = pd.DataFrame(curve_rows), pd.DataFrame(run_rows)
    summary = summarise(curves, runs)
    args.out.mkdir(parents=True, exist_ok=True)
    curves.to_csv(args.out / "blackbox_curves.csv", index=False)
    summary.to_csv(args.out / "blackbox_summary.csv", index=False)
    plot(curves, args.out / "blackbox_curves.png")
    table = markdown(summary, args.seeds, runs["wall_seconds"].sum() / 60)
    (args.out / "blackbox_distill.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
