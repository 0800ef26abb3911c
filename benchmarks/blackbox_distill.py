"""Accuracy per query: TandemGAN (label, proba), DFME (label, proba), random noise, real-data KD and AEDM.

Every method runs through ``fedkd run`` with the shipped config of its dataset
(``simulations/tandemgan_mnist.toml``, ``simulations/tandemgan_digits28.toml``), changing only
``distill.method``, ``distill.mode``, ``distill.budget`` and ``run.seed``: same teacher, student,
optimizer, batch and budget. Each run's test accuracy is interpolated onto a common grid of query
counts, then averaged over seeds. AEDM (``aedm/MODE``, steered; ``aedm-plain/MODE``, plain prior
samples) runs with ``simulations/aedm_mnist.toml`` (mnist5k only), once per budget of
``--aedm-budgets``, because it trains the student offline on all its queries when the budget is spent:
its accuracy at a budget is the final accuracy of the run with that budget (which spends whole batches
of 64: 960 of 1,000 queries, 99,968 of 100,000; the cost table gives the queries spent).

    python benchmarks/blackbox_distill.py --budget-for digits28=400000   # as in the README (~3 h here)
    python benchmarks/blackbox_distill.py --budget 100000 --seeds 0 --datasets digits28   # a quick look
    python benchmarks/blackbox_distill.py --datasets mnist5k --variants --reuse benchmarks/results   # AEDM only

Writes ``benchmarks/results/blackbox_curves.csv`` (one row per run and grid point; for AEDM one row per
run, at its budget), ``blackbox_summary.csv``, ``blackbox_curves.png`` and ``blackbox_distill.md``
(the summary, accuracy at fixed budgets and the cost of each method). Runs are kept under ``--runs``
and a finished one is not run again, so an interrupted benchmark continues where it stopped;
``--reuse DIR`` keeps the rows of an earlier benchmark's CSVs in ``DIR`` for every dataset and method
not run this time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
VARIANTS: tuple[tuple[str, str], ...] = (
    ("tandemgan", "label"), ("tandemgan", "proba"), ("dfme", "label"), ("dfme", "proba"),
    ("random", "label"), ("real", "label"),
)
CONFIGS = {"mnist5k": "tandemgan_mnist.toml", "digits28": "tandemgan_digits28.toml"}
AEDM_CONFIGS = {"mnist5k": "aedm_mnist.toml"}
AEDM_VARIANTS: tuple[str, ...] = ("aedm/label", "aedm-plain/label")
#: Budgets of the accuracy-at-budget table.
TABLE_BUDGETS: tuple[int, ...] = (1_000, 5_000, 20_000, 100_000, 1_000_000)


def run_one(dataset: str, method: str, mode: str, seed: int, budget: int, eval_every: int, runs: Path) -> pd.DataFrame:
    """One run's metrics (resumed or reused when its directory already holds it).

    ``method`` ``aedm`` / ``aedm-plain`` runs AEDM's config with steering on / off.
    """
    import fedkd

    out = runs / f"{dataset}-{method}-{mode}-b{budget}-s{seed}"
    overrides = {"distill.mode": mode, "distill.budget": budget, "distill.eval_every": eval_every,
                 "run.seed": seed, "run.name": out.name}
    if method.startswith("aedm"):
        config = AEDM_CONFIGS[dataset]
        overrides["aedm.steer"] = method == "aedm"
    else:
        config = CONFIGS[dataset]
        overrides["distill.method"] = method
    started = time.perf_counter()
    result = fedkd.run(ROOT / "simulations" / config, overrides=overrides, out=out,
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
    final = curves[curves["queries"] == curves.groupby(["dataset", "method"])["queries"].transform("max")]
    rows = []
    for (dataset, method), group in final.groupby(["dataset", "method"], sort=False):
        teacher = group["teacher_acc"].iloc[0]
        reach = []
        for _, per_seed in curves[(curves["dataset"] == dataset) & (curves["method"] == method)].groupby("seed"):
            reach.append(first_reaching(per_seed["queries"].to_numpy(), per_seed["test_acc"].to_numpy(), 0.9 * teacher))
        speed = runs[(runs["dataset"] == dataset) & (runs["method"] == method)
                     & (runs["budget"] == group["queries"].iloc[0])]
        rows.append({
            "dataset": dataset, "method": method, "budget": int(group["queries"].iloc[0]), "teacher_acc": teacher,
            "test_acc_mean": group["test_acc"].mean(), "test_acc_std": group["test_acc"].std(ddof=1),
            "fidelity_mean": group["fidelity"].mean(), "fidelity_std": group["fidelity"].std(ddof=1),
            "relative_acc": group["test_acc"].mean() / teacher,
            "queries_to_90pct_teacher": np.nanmedian(reach) if not np.isnan(reach).all() else float("nan"),
            "seeds_reaching_90pct": int(np.sum(~np.isnan(reach))), "seeds_with_curve": len(reach),
            "seeds": len(group),
            "queries_per_second": speed["queries_per_second"].mean(),
            "student_steps_per_second": speed["student_steps_per_second"].mean(),
            "share_teacher": speed["share_teacher"].mean(), "share_generator": speed["share_generator"].mean(),
            "share_student": speed["share_student"].mean(), "wall_seconds": speed["wall_seconds"].mean(),
            "seconds_steer": speed["seconds_steer"].mean(), "seconds_store": speed["seconds_store"].mean(),
            "queries_spent": speed["queries"].mean(),
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
            stats = group[group["queries"] > 0].groupby("queries")["test_acc"].agg(["mean", "std"]).fillna(0.0)
            q = stats.index.to_numpy() / 1e3
            ax.plot(q, stats["mean"], label=method, marker="o" if method.startswith("aedm") else None)
            ax.fill_between(q, stats["mean"] - stats["std"], stats["mean"] + stats["std"], alpha=0.2)
        teacher = data["teacher_acc"].iloc[0]
        ax.axhline(teacher, color="black", lw=0.8, ls="--", label="teacher")
        ax.axhline(0.9 * teacher, color="grey", lw=0.8, ls=":", label="90 % of teacher")
        ax.set(title=f"{dataset}: student test accuracy", xlabel="queries (thousands)", ylabel="test accuracy",
               ylim=(0, 1), xscale="log")
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def mean_std(mean: float, std: float) -> str:
    """``mean ± std``, or the mean alone where one seed leaves no spread."""
    return f"{mean:.3f}" if np.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def markdown(summary: pd.DataFrame) -> str:
    lines = [
        "Black-box distillation of a LeNet-5 teacher into a LeNet-5 student at the query budget in the table, "
        "over the seeds in the last column (mean ± std). `method/mode`: `label` = the teacher answers class "
        "indices only, `proba` = probabilities. `real/label` is the reference with real unlabeled images from "
        "the teacher's training split. `aedm` steers the noise of the config's diffusion prior (`aedm.prior`) "
        "towards the student's uncertainty, `aedm-plain` queries plain prior samples (`simulations/aedm_mnist.toml`). "
        "Shared 2-core machine, one thread per run; time is the distillation loop's (evaluation and start-up "
        "not counted).",
        "",
        "| dataset | budget | method/mode | teacher acc | student test acc | fidelity | % of teacher "
        "| queries to 90 % of teacher | queries/s | student steps/s | time teacher / generator / student | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary.itertuples():
        reach = "—"
        if not np.isnan(row.queries_to_90pct_teacher):
            of = row.seeds if np.isnan(row.seeds_with_curve) else row.seeds_with_curve
            reach = f"{row.queries_to_90pct_teacher / 1e3:,.0f}k ({row.seeds_reaching_90pct}/{of:.0f})"
        lines.append(
            f"| {row.dataset} | {row.budget / 1e3:,.0f}k | {row.method} | {row.teacher_acc:.3f} "
            f"| {mean_std(row.test_acc_mean, row.test_acc_std)} | {mean_std(row.fidelity_mean, row.fidelity_std)} "
            f"| {100 * row.relative_acc:.0f} % | {reach} "
            f"| {row.queries_per_second:,.0f} | {row.student_steps_per_second:.1f} "
            f"| {100 * row.share_teacher:.0f} / {100 * row.share_generator:.0f} / {100 * row.share_student:.0f} % "
            f"| {row.seeds} |"
        )
    return "\n".join(lines) + "\n"


def accuracy_at_budgets(curves: pd.DataFrame) -> str:
    """Markdown: mean ± std test accuracy per method at each of ``TABLE_BUDGETS`` where it was measured.

    A curve method counts at a budget on its evaluation grid; AEDM at the budgets it was run with.
    """
    header = " | ".join(f"{b / 1e3:,.0f}k" for b in TABLE_BUDGETS)
    lines = [f"| dataset | method/mode | {header} |", "|---|---|" + "---|" * len(TABLE_BUDGETS)]
    for (dataset, method), group in curves.groupby(["dataset", "method"], sort=False):
        cells = []
        for budget in TABLE_BUDGETS:
            at = group.loc[group["queries"] == budget, "test_acc"]
            spread = f" ± {at.std(ddof=1):.3f}" if len(at) > 1 else ""
            count = f" ({len(at)} seed{'s' if len(at) > 1 else ''})" if 0 < len(at) < 3 else ""
            cells.append(f"{at.mean():.3f}{spread}{count}" if len(at) else "—")
        lines.append(f"| {dataset} | {method} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def cost_table(summary: pd.DataFrame) -> str:
    """Markdown: per method at its largest budget, queries and seconds spent (mean over seeds).

    For AEDM, ``generator`` is split into steering the prior's noise and decoding (``steer``) and the
    final offline training of the student on its stored queries (``offline``).
    """
    lines = ["| dataset | method/mode | queries | loop wall s | teacher s | generator / sampler s "
             "| of which steer s | student s (online + offline) |", "|---|---|---|---|---|---|---|---|"]
    for row in summary.itertuples():
        wall = row.wall_seconds
        offline = 0.0 if np.isnan(row.seconds_store) else row.seconds_store
        steer = "—" if np.isnan(row.seconds_steer) else f"{row.seconds_steer:,.0f}"
        spent = row.budget if np.isnan(row.queries_spent) else row.queries_spent
        lines.append(f"| {row.dataset} | {row.method} | {spent:,.0f} | {wall:,.0f} | {wall * row.share_teacher:,.0f} "
                     f"| {wall * row.share_generator - offline:,.0f} | {steer} "
                     f"| {wall * row.share_student + offline:,.0f} |")
    return "\n".join(lines) + "\n"


def reuse(new: pd.DataFrame, earlier: Path) -> pd.DataFrame:
    """``new`` after the rows of the earlier CSV ``earlier`` whose dataset and method ``new`` lacks."""
    if not earlier.exists():
        return new
    old = pd.read_csv(earlier)
    ran = set(zip(new["dataset"], new["method"], strict=True))
    keep = [(d, m) not in ran for d, m in zip(old["dataset"], old["method"], strict=True)]
    return pd.concat([old[keep], new], ignore_index=True)


def sample_grid(runs: Path, dataset: str, mode: str, seed: int, budget: int, path: Path, n: int = 64) -> None:
    """The last ``n`` queries of the steered and of the plain AEDM run side by side, as the teacher saw them."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from safetensors.torch import load_file

    from fedkd.payload import decode_images

    fig, axes = plt.subplots(1, 2, figsize=(10, 5.4))
    side = int(np.sqrt(n))
    for ax, method in zip(axes, ("aedm", "aedm-plain"), strict=True):
        run = runs / f"{dataset}-{method}-{mode}-b{budget}-s{seed}"
        tensors = load_file(str(sorted((run / "checkpoints").glob("ckpt-*.safetensors"))[-1]))
        stored = {k.rsplit("/", 1)[-1]: v for k, v in tensors.items() if "/store/" in k}
        images = decode_images(stored["codes"][-side * side:], stored["scales"][-side * side:])
        grid = images.reshape(side, side, 28, 28).permute(0, 2, 1, 3).reshape(side * 28, side * 28)
        ax.imshow(((grid + 1) / 2).clamp(0, 1).numpy(), cmap="gray")
        ax.set(title=f"{'steered' if method == 'aedm' else 'plain prior samples'}: last {side * side} "
                     f"of {budget:,} {mode} queries", xticks=[], yticks=[])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_row(metrics: pd.DataFrame, dataset: str, variant: str, seed: int, budget: int) -> dict[str, object]:
    """One run's speed and time split (loop seconds: teacher, generator, student; AEDM's steer, the store stage)."""
    last = metrics.groupby("metric")["value"].last()
    parts = {p: last[f"seconds/{p}"] for p in ("teacher", "generator", "student")}
    total = sum(parts.values())
    return {"dataset": dataset, "method": variant, "seed": seed, "budget": budget, "queries": last["queries"],
            "queries_per_second": last["queries_per_second"],
            "student_steps_per_second": last["student_steps_per_second"],
            "wall_seconds": total, **{f"share_{p}": v / total for p, v in parts.items()},
            **{f"seconds_{p}": last.get(f"seconds/{p}", float("nan")) for p in ("steer", "store")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--budget", type=int, default=1_000_000, help="queries per run")
    parser.add_argument("--budget-for", nargs="+", default=[], metavar="DATASET=N",
                        help="a different budget for a dataset, e.g. digits28=400000")
    parser.add_argument("--eval-every", type=int, default=25_000)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="*", default=[f"{m}/{mode}" for m, mode in VARIANTS],
                        help="method/mode pairs, e.g. tandemgan/label dfme/proba")
    parser.add_argument("--aedm-variants", nargs="*", default=list(AEDM_VARIANTS),
                        help="aedm/MODE (steered) and aedm-plain/MODE, run on the datasets of AEDM_CONFIGS")
    parser.add_argument("--aedm-budgets", nargs="*", type=int, default=[1_000, 5_000, 20_000, 100_000])
    parser.add_argument("--aedm-seeds-for", nargs="+", default=[], metavar="BUDGET=S,S",
                        help="fewer seeds at a budget, e.g. 100000=0 (default: --seeds)")
    parser.add_argument("--reuse", type=Path, default=None, metavar="DIR",
                        help="keep the rows of DIR's blackbox_curves.csv and blackbox_summary.csv for the "
                             "datasets and methods not run now")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "blackbox_bench")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # one thread per run, as every row was measured (distill.threads = 0 keeps it)

    budgets = {dataset: args.budget for dataset in args.datasets}
    for item in args.budget_for:
        dataset, _, n = item.partition("=")
        if dataset not in budgets or not n.isdigit():
            parser.error(f"--budget-for {item!r}: expected DATASET=N with DATASET one of {args.datasets}")
        budgets[dataset] = int(n)
    aedm_seeds = {int(b): [int(x) for x in seeds.split(",")]
                  for b, _, seeds in (item.partition("=") for item in args.aedm_seeds_for)}
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
                run_rows.append(run_row(metrics, dataset, variant, seed, budgets[dataset]))
        for budget in args.aedm_budgets if dataset in AEDM_CONFIGS else []:
            for seed in aedm_seeds.get(budget, args.seeds):
                for variant in args.aedm_variants:
                    method, mode = variant.split("/")
                    metrics = run_one(dataset, method, mode, seed, budget, budget, args.runs)
                    last = metrics.groupby("metric")["value"].last()
                    curve_rows.append({"dataset": dataset, "method": variant, "seed": seed,
                                       "queries": budget, "teacher_acc": last["teacher_acc"],
                                       "test_acc": last["test_acc"], "fidelity": last["fidelity"]})
                    run_rows.append(run_row(metrics, dataset, variant, seed, budget))
    curves, runs = pd.DataFrame(curve_rows), pd.DataFrame(run_rows)
    summary = summarise(curves, runs)
    if args.reuse is not None:
        curves = reuse(curves, args.reuse / "blackbox_curves.csv")
        summary = reuse(summary, args.reuse / "blackbox_summary.csv")
    args.out.mkdir(parents=True, exist_ok=True)
    curves.to_csv(args.out / "blackbox_curves.csv", index=False)
    summary.to_csv(args.out / "blackbox_summary.csv", index=False)
    plot(curves, args.out / "blackbox_curves.png")
    table = "\n".join([
        markdown(summary),
        "Test accuracy at each budget (mean ± std over the seeds run; AEDM: one run per budget; curve methods: "
        "where their evaluation grid has the budget).", "", accuracy_at_budgets(curves),
        "Cost per method at its largest budget (mean over seeds; seconds on the shared machine, whose load from "
        "other jobs varied between runs).", "", cost_table(summary),
    ])
    (args.out / "blackbox_distill.md").write_text(table)
    if {"aedm/label", "aedm-plain/label"} <= set(args.aedm_variants) and "mnist5k" in args.datasets:
        grid_budget = 20_000 if 20_000 in args.aedm_budgets else max(args.aedm_budgets)
        sample_grid(args.runs, "mnist5k", "label", args.seeds[0], grid_budget, args.out / "aedm_samples.png")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
