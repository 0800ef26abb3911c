"""Generative baselines, measured: how small and fast can a generator get while keeping its quality?

(a) Dark-knowledge generator distillation on 8x8 digits (``simulations/dark_knowledge.toml``): FID-like of the
    conditional GAN teacher, the dark-knowledge student, the output-only student and the two single-term
    ablations.
(a28) The same at 28x28 on real MNIST (``simulations/dark_knowledge28.toml``), at several student widths
    (``--dk28-widths``) and, at the smallest width, with a second choice of the terms' weights
    (``--dk28-weights``): FID-like in the feature space of a 28x28 classifier, precision/recall, and the
    class accuracy of the samples under an independent classifier.
(b) Single-fold vs. progressive diffusion distillation (``simulations/single_fold.toml``) at equal compute:
    FID-like vs. sampling steps for the teacher (DDIM), the single-fold and the progressive students, and
    sampling time per image.
(c) The cost of steering the diffusion prior, as AEDM does: Adam steps on a batch of x_T through the
    sampler, per query.

FID-like values are Fréchet distances in the feature space of the project's own classifiers
(``fedkd.metrics``): comparable with each other within one image size (same feature net, same 1,000
samples, same starting noise), not across sizes and not with published FIDs. Every run is a plain
``fedkd.run`` of the shipped config with its seed.

    python benchmarks/generative.py [--only dark_knowledge28 ...] [--seeds 0 1 2] [--sf-seeds 0 1 2]
        [--dk28-seeds 0 1 2] [--dk28-widths 32,16,8 16,8,4] [--dk28-weights 1.0,0.004] [--dk-set k=v ...]

Writes ``benchmarks/results/generative.csv`` (every logged value, per seed; with ``--only``, the rows of the
other experiments are kept from the previous file), ``generative_summary.csv`` (mean, std, n per metric),
``generative.png``, ``generative_samples_<experiment>.png`` (seed 0; the students of one experiment from the
same noise as its teacher) and ``generative.md`` (the tables).
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

import fedkd  # noqa: E402
from fedkd.data import load_dataset  # noqa: E402
from fedkd.metrics import FidLike  # noqa: E402
from fedkd.models.diffusion import load_prior  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIGS = {"dark_knowledge": "simulations/dark_knowledge.toml", "dark_knowledge28": "simulations/dark_knowledge28.toml",
           "single_fold": "simulations/single_fold.toml"}
# What the benchmark adds to the shipped configs (``--dk-set``/``--sf-set`` come after, so they win): the two
# ablation students, and a curve over step counts instead of the configs' single T' = 8.
BENCH_OVERRIDES = {
    "dark_knowledge": ["eval.ablations=true"],
    "dark_knowledge28": [],  # the ablations run at the smallest width only (``dk28_cells``): CPU is scarce
    "single_fold": ["student.steps=[16, 8]", "eval.teacher_steps=[64, 32, 16, 8]"],
}
DK_VARIANTS = (("output_only", "output only"), ("features_only", "output + features"),
               ("adversarial_only", "output + adversarial"), ("dark_knowledge", "all three (dark knowledge)"))


TRIED = """\
- Generator distillation, 2 seeds each, FID-like at 1,500 steps (student widths 32/16/8): output only 1.89/2.08,
  + features 1.85/2.06, + adversarial 1.95/2.24, all three 2.02/1.97; with a 16/8/4 student the feature term hurt
  (2.67/2.52 vs. 2.39/2.29 output only); at 400 steps every extra term hurt. The 12x smaller student nearly
  reaches the teacher with pixels alone, which leaves the dark knowledge little to add on 8x8 digits.
- Single-fold students (8/16 widths, 800-1,000 steps, T' = 8): learning rate 5e-3 beat 2e-3 (FID-like 26 vs. 35);
  feature weight 0.1 beat 1.0 (19 vs. 21); a student as wide as the teacher reached 16. Students trained from
  scratch stay far from the teacher at this compute; the progressive chain, also from scratch, spends two thirds
  of its steps on 32- and 16-step students it then discards.
- The GAN teacher: Adam beta1 = 0.5 (DCGAN) reached FID-like 7.2 in 4,000 steps, beta1 = 0 reached 2.0; a learning
  rate of 1e-3 collapsed.
- 28x28 (one attempt each, seed 0): the mnist5k teacher was trained once with the digits teacher's settings and a
  3-layer discriminator (32/64/128; a 2-layer one sees only ~6-pixel patches at 28x28). Before the grid, output-only
  students at 1,000 steps picked the widths (FID-like / class accuracy; teacher 1.68 / 0.979): 64/32/16 2.53 / 0.980,
  32/16/8 3.29 / 0.969, 16/8/4 44.9 / 0.940, 8/4/2 80.6 / 0.877. The grid then ran at 500 steps so that it fit the
  shared CPU (load 10-30 on 2 cores during the runs). The weights of the config (feature 1.0, adversarial 0.05) are
  those of the 8x8 setting; the losses are means over pixels and feature elements while the discriminator's score
  is a sum over its spatial map, so at 28x28 the adversarial term weighs about 784/64 = 12x more against the
  output L1 than at 8x8: the extra cell 1.0/0.004 is 0.05 rescaled by that ratio, chosen from this argument after
  the first seed showed the 0.05 term wrecking the student, not searched for. A cell 0.1/0.5 declared before the
  runs was stopped unfinished (no seed complete) to leave the CPU to the three cells above."""


def run_configs(experiment: str, seeds: list[int], overrides: list[str], tmp: Path, results: Path,
                label: str | None = None) -> pd.DataFrame:
    """Run one shipped config once per seed; the tidy metrics of all runs, named ``label`` (default:
    ``experiment``) and ``seed``."""
    label = label or experiment
    frames = []
    for seed in seeds:
        start = time.perf_counter()
        result = fedkd.run(CONFIGS[experiment], out=tmp / f"{_file_safe(label)}-{seed}",
                           overrides=[*BENCH_OVERRIDES[experiment], *overrides, f"run.seed={seed}"])
        print(f"{label} seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
        frame = result.metrics[["step", "metric", "value"]].copy()
        frame.insert(0, "seed", seed)
        frame.insert(0, "experiment", label)
        frames.append(frame)
        if seed == seeds[0]:
            shutil.copy(result.path / "samples.png", results / f"generative_samples_{_file_safe(label)}.png")
    return pd.concat(frames, ignore_index=True)


def dk28_cells(widths: list[str], weights: list[str]) -> list[tuple[str, list[str]]]:
    """(label, overrides) of the 28x28 runs: every width at the config's weights (the smallest, last, also
    with the two single-term ablations), then each extra ``feature_weight,adversarial_weight`` pair at the
    smallest width (dark knowledge and output only)."""
    cells = [(f"dark_knowledge28@{w}", [f"student.widths=[{w}]", f"eval.ablations={str(w == widths[-1]).lower()}"])
             for w in widths]
    for pair in weights:
        feature, adversarial = pair.split(",")
        cells.append((f"dark_knowledge28@{widths[-1]}/fw={feature},aw={adversarial}",
                      [f"student.widths=[{widths[-1]}]", f"distill.feature_weight={feature}",
                       f"distill.adversarial_weight={adversarial}"]))
    return cells


def _seed_count(part: pd.DataFrame) -> int:
    rows = part[part["metric"] == "fid_like/teacher"]
    return int(rows["n"].iloc[0]) if len(rows) else 0


def _file_safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", label).strip("_")


def steering_cost(batch: int = 64, adam_steps: int = 5, sampling_steps: int = 8, grad_last_k: int = 2,
                  repeats: int = 3) -> dict[str, float]:
    """Seconds per batch and ms per query of AEDM-style steering: Adam on x_T through the prior's sampler."""
    prior = load_prior("pretrained/prior-digits", expect={"dataset": "digits"})
    gen = torch.Generator().manual_seed(0)
    timings = []
    for _ in range(repeats):
        x_T = torch.randn(batch, 1, 8, 8, generator=gen).requires_grad_(True)
        opt = torch.optim.Adam([x_T], lr=0.1)
        start = time.perf_counter()
        for _ in range(adam_steps):
            images = prior.sample(x_T, steps=sampling_steps, grad_last_k=grad_last_k, out_size=28)
            loss = images.mean()  # stands in for the student's entropy: the same graph through the sampler
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            prior.sample(x_T, steps=sampling_steps, out_size=28)
        timings.append(time.perf_counter() - start)
    best = min(timings)
    return {"batch": batch, "adam_steps": adam_steps, "sampling_steps": sampling_steps, "grad_last_k": grad_last_k,
            "seconds_per_batch": best, "ms_per_query": 1000 * best / batch}


def real_floor() -> float:
    """FID-like of the 360 held-out real digits against the reference (a floor; fewer samples than the runs)."""
    fid = FidLike.from_teacher()
    _, test = load_dataset("digits").split(0.2, 0)
    return fid(torch.from_numpy(np.array(test.x)))


def real_floor28() -> dict[str, float]:
    """The 1,000 held-out real MNIST images measured like the samples: FID-like, precision, recall, class accuracy."""
    from fedkd.metrics import accuracy
    from fedkd.teachers import load_teacher
    from fedkd.train import predict_logits

    fid = FidLike.from_teacher("pretrained/fid-mnist5k-vgg_small", dataset="mnist5k")
    _, test = load_dataset("mnist5k").split(0.2, 0)
    x, y = test.tensors()
    precision, recall = fid.precision_recall(x)
    classifier = load_teacher(ROOT / "teachers" / "mnist5k-lenet5", dataset="mnist5k").model
    return {"fid_like": fid(x), "precision": precision, "recall": recall,
            "class_acc": accuracy(predict_logits(classifier, x), y), "n": len(x)}


def summarise(raw: pd.DataFrame) -> pd.DataFrame:
    final = raw[raw["step"].isna()]
    return (final.groupby(["experiment", "metric"])["value"].agg(["mean", "std", "count"])
            .rename(columns={"count": "n"}).reset_index())


def _cell(summary: pd.DataFrame, metric: str, digits: int = 2) -> str:
    row = summary[summary["metric"] == metric]
    if row.empty:
        return "–"
    mean, std, n = row.iloc[0][["mean", "std", "n"]]
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 and std > 0 else f"{mean:.{digits}f}"


def _steps_of(summary: pd.DataFrame, prefix: str) -> list[int]:
    pattern = re.compile(rf"^fid_like/{prefix}@(\d+)$")
    return sorted({int(m.group(1)) for m in map(pattern.match, summary["metric"]) if m}, reverse=True)


def dk28_section(summary: pd.DataFrame, floor: dict[str, float], seeds: list[int]) -> list[str]:
    """Tables of the 28x28 runs: one per student width / weight choice, teacher first, then the four students."""
    labels = sorted({e for e in summary["experiment"] if e.startswith("dark_knowledge28@")},
                    key=lambda e: (-sum(map(int, e.split("@")[1].split("/")[0].split(","))), e))
    if not labels:
        return []
    lines = [
        f"## (a28) Dark-knowledge generator distillation at 28x28 on real MNIST (seeds {seeds} where finished)",
        "",
        "Teacher: conditional DCGAN on `mnist5k` (`pretrained/gan-mnist5k`); students: the same architecture with "
        "the widths named in each table, distilled data-free with the same initialisation, steps, noise and "
        "labels in every variant (one teacher-generator evaluation per step; the adversarial term adds a "
        "forward and backward pass through the frozen discriminator, which the train-seconds column shows). "
        "FID-like in the penultimate layer of `pretrained/fid-mnist5k-vgg_small` (VGG-small on the mnist5k "
        "training split), 1,000 samples against the 4,000 training images; **FID-like, not comparable to "
        "published FID, nor to the 8x8 table above**. Class accuracy: share of samples that the independent "
        "`teachers/mnist5k-lenet5` assigns to the class they were conditioned on. "
        f"Held-out real MNIST ({floor['n']} images): FID-like {floor['fid_like']:.2f}, precision "
        f"{floor['precision']:.2f}, recall {floor['recall']:.2f}, class accuracy {floor['class_acc']:.3f}.",
    ]
    for label in labels:
        part = summary[summary["experiment"] == label]
        widths, _, weights = label.split("@")[1].partition("/")
        lines += [
            "",
            f"### student widths {widths}" + (f", weights {weights}" if weights else ", weights of the config")
            + f" ({_seed_count(part)} seeds)",
            "",
            "| generator | parameters | FID-like | precision | recall | class acc | train s |",
            "|---|---|---|---|---|---|---|",
            f"| teacher | {_cell(part, 'params/teacher', 0)} | {_cell(part, 'fid_like/teacher')} | "
            f"{_cell(part, 'precision/teacher')} | {_cell(part, 'recall/teacher')} | "
            f"{_cell(part, 'class_acc/teacher', 3)} | – |",
        ]
        for name, what in DK_VARIANTS:
            if part[part["metric"] == f"fid_like/{name}"].empty:
                continue
            lines.append(f"| student, {what} | {_cell(part, 'params/student', 0)} | "
                         f"{_cell(part, f'fid_like/{name}')} | {_cell(part, f'precision/{name}')} | "
                         f"{_cell(part, f'recall/{name}')} | {_cell(part, f'class_acc/{name}', 3)} | "
                         f"{_cell(part, f'train_seconds/{name}', 0)} |")
    return lines


def markdown(summary: pd.DataFrame, steer: dict[str, float], floor: float, floor28: dict[str, float],
             seeds: dict[str, list[int]]) -> str:
    dk = summary[summary["experiment"] == "dark_knowledge"]
    sf = summary[summary["experiment"] == "single_fold"]
    lines = [
        "# Generative baselines",
        "",
        "FID-like: Fréchet distance in the penultimate layer of the project's own digits classifier "
        "(`pretrained/fid-digits-vgg_small`), 1,000 samples against the 1,437 training digits. "
        "**FID-like, not comparable to published FID.** "
        f"Held-out real digits score {floor:.2f} (360 images, so a slightly higher floor than 1,000 would give). "
        "Mean ± std over seeds; lower is better. Measured on the shared 2-core CPU (timings are pessimistic).",
        "",
        f"## (a) Dark-knowledge generator distillation (seeds {seeds['dark_knowledge']})",
        "",
        "| generator | parameters | FID-like | precision | recall | train s |",
        "|---|---|---|---|---|---|",
        f"| teacher (conditional DCGAN) | {_cell(dk, 'params/teacher', 0)} | {_cell(dk, 'fid_like/teacher')} | "
        f"{_cell(dk, 'precision/teacher')} | {_cell(dk, 'recall/teacher')} | – |",
    ]
    for name, label in (("dark_knowledge", "student, dark knowledge"), ("output_only", "student, output only"),
                        ("features_only", "student, output + features (ablation)"),
                        ("adversarial_only", "student, output + adversarial (ablation)")):
        if dk[dk["metric"] == f"fid_like/{name}"].empty:
            continue
        lines.append(f"| {label} | {_cell(dk, 'params/student', 0)} | {_cell(dk, f'fid_like/{name}')} | "
                     f"{_cell(dk, f'precision/{name}')} | {_cell(dk, f'recall/{name}')} | "
                     f"{_cell(dk, f'train_seconds/{name}', 0)} |")
    lines += [
        "",
        *dk28_section(summary, floor28, seeds["dark_knowledge28"]),
        "",
        f"## (b) Single-fold vs. progressive diffusion distillation at equal compute (seeds {seeds['single_fold']})",
        "",
        "Teacher: 64-step diffusers UNet (DDPM-trained); students: a UNet with half the widths. A student with "
        "64/2^k steps gets k x `steps_per_halving` optimizer steps in either method (progressive: 2 teacher "
        "evaluations per step, single-fold: 1). Sampling is DDIM over the model's own steps unless marked DDPM.",
        "",
        "| steps | teacher (DDIM) | single-fold | progressive | single-fold (DDPM) | ms/image teacher | "
        "ms/image student |",
        "|---|---|---|---|---|---|---|",
    ]
    teacher_steps = _steps_of(sf, "teacher")
    for n in sorted(set(teacher_steps) | set(_steps_of(sf, "single_fold")) | set(_steps_of(sf, "progressive")),
                    reverse=True):
        student_ms = _cell(sf, f"sample_ms_per_image/single_fold@{n}", 3)
        if student_ms == "–":
            student_ms = _cell(sf, f"sample_ms_per_image/progressive@{n}", 3)
        lines.append(f"| {n} | {_cell(sf, f'fid_like/teacher@{n}')} | {_cell(sf, f'fid_like/single_fold@{n}')} | "
                     f"{_cell(sf, f'fid_like/progressive@{n}')} | {_cell(sf, f'fid_like/single_fold_ddpm@{n}')} | "
                     f"{_cell(sf, f'sample_ms_per_image/teacher@{n}', 3)} | {student_ms} |")
    top = max(teacher_steps, default=64)
    lines += [
        f"| {top} (DDPM) | {_cell(sf, f'fid_like/teacher_ddpm@{top}')} | | | | | |",
        "",
        "## (c) Steering the prior (AEDM's query synthesis)",
        "",
        f"{steer['adam_steps']} Adam steps on a batch of {steer['batch']} starting noises through "
        f"{steer['sampling_steps']} DDIM steps (gradient through the last {steer['grad_last_k']}), then the final "
        f"decode, upsampled to 28x28: {steer['seconds_per_batch']:.2f} s per batch, "
        f"{steer['ms_per_query']:.1f} ms per query (best of 3).",
        "",
        "## Notes: what was tried",
        "",
        TRIED,
        "",
    ]
    return "\n".join(lines)


def plot(summary: pd.DataFrame, path: Path) -> None:
    dk = summary[summary["experiment"] == "dark_knowledge"].set_index("metric")
    sf = summary[summary["experiment"] == "single_fold"].set_index("metric")
    fig, axes = plt.subplots(1, 4, figsize=(19, 3.8))
    colors = {"teacher": "0.4", "dark_knowledge": "tab:blue", "output_only": "tab:orange",
              "features_only": "tab:cyan", "adversarial_only": "tab:purple"}
    names = [n for n in colors if f"fid_like/{n}" in dk.index]
    axes[0].bar([n.replace("_", "\n") for n in names], [dk.loc[f"fid_like/{n}", "mean"] for n in names],
                yerr=[np.nan_to_num(dk.loc[f"fid_like/{n}", "std"]) for n in names], capsize=4,
                color=[colors[n] for n in names])
    axes[0].set_title("(a) generator distillation")
    axes[0].set_ylabel("FID-like (lower is better)")
    for prefix, style in (("teacher", "k-o"), ("single_fold", "b-s"), ("progressive", "r-^"),
                          ("single_fold_ddpm", "b:x")):
        steps = _steps_of(sf.reset_index(), prefix)
        if steps:
            means = [sf.loc[f"fid_like/{prefix}@{n}", "mean"] for n in steps]
            stds = [np.nan_to_num(sf.loc[f"fid_like/{prefix}@{n}", "std"]) for n in steps]
            axes[1].errorbar(steps, means, yerr=stds, fmt=style, label=prefix, capsize=3)
            ms = [sf.loc[f"sample_ms_per_image/{prefix}@{n}", "mean"] for n in steps]
            axes[2].plot(steps, ms, style, label=prefix)
    for ax, title, ylabel in ((axes[1], "(b) FID-like vs. sampling steps", "FID-like"),
                              (axes[2], "(b) sampling time", "ms per image")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sampling steps")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8)
    labels = [e for e in summary["experiment"].unique() if e.startswith("dark_knowledge28@")]
    for i, (name, what) in enumerate(DK_VARIANTS):
        rows = [summary[(summary["experiment"] == e) & (summary["metric"] == f"fid_like/{name}")] for e in labels]
        axes[3].bar(np.arange(len(labels)) + 0.2 * (i - 1.5), [r["mean"].sum() if len(r) else np.nan for r in rows],
                    width=0.2, yerr=[np.nan_to_num(r["std"].sum()) for r in rows], capsize=2, label=what,
                    color=colors[name])
    axes[3].set_xticks(np.arange(len(labels)), [e.split("@")[1].replace("/", "\n") for e in labels], fontsize=7)
    axes[3].set_title("(a28) 28x28 students by width")
    axes[3].set_ylabel("FID-like (28x28 feature net, log scale)")
    axes[3].set_yscale("log")
    if labels:
        axes[3].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(CONFIGS), default=sorted(CONFIGS),
                        help="experiments to (re-)run; the others' rows are kept from the previous results file")
    parser.add_argument("--from-csv", nargs="+", type=Path, default=[], metavar="CSV",
                        help="generative.csv files of other invocations (e.g. run in parallel with --results); "
                             "their rows replace those of the same experiment labels, their sample grids are copied")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the 8x8 dark-knowledge runs")
    parser.add_argument("--dk28-seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the 28x28 runs")
    parser.add_argument("--dk28-widths", nargs="+", default=["32,16,8", "16,8,4"],
                        help="student generator widths of the 28x28 runs, widest first")
    parser.add_argument("--dk28-weights", nargs="*", default=["1.0,0.004"], metavar="FW,AW",
                        help="extra feature_weight,adversarial_weight pairs measured at the smallest width")
    parser.add_argument("--dk28-cells", nargs="+", default=[], metavar="LABEL",
                        help="run only these 28x28 cells, e.g. dark_knowledge28@16,8,4 (to split the grid across "
                             "processes; merge their --results with --from-csv)")
    parser.add_argument("--sf-seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the single-fold runs")
    parser.add_argument("--dk-set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--sf-set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--dk28-set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--results", type=Path, default=RESULTS, help="output folder (default benchmarks/results)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = args.results
    results.mkdir(parents=True, exist_ok=True)
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        if "dark_knowledge" in args.only:
            frames.append(run_configs("dark_knowledge", args.seeds, args.dk_set, Path(tmp), results))
        if "dark_knowledge28" in args.only:
            for label, overrides in dk28_cells(args.dk28_widths, args.dk28_weights):
                if args.dk28_cells and label not in args.dk28_cells:
                    continue
                frames.append(run_configs("dark_knowledge28", args.dk28_seeds, [*overrides, *args.dk28_set], Path(tmp),
                                          results, label))
        if "single_fold" in args.only:
            frames.append(run_configs("single_fold", args.sf_seeds, args.sf_set, Path(tmp), results))
    for extra in args.from_csv:
        frames.append(pd.read_csv(extra))
        if extra.parent.resolve() != results.resolve():
            for grid in extra.parent.glob("generative_samples_*.png"):
                shutil.copy(grid, results / grid.name)
    previous = results / "generative.csv"
    if previous.is_file():
        kept = pd.read_csv(previous)
        new_labels = set().union(*(set(f["experiment"]) for f in frames))
        frames.insert(0, kept[~kept["experiment"].map(_experiment_of).isin(args.only)
                              & ~kept["experiment"].isin(new_labels)])
    raw = pd.concat(frames, ignore_index=True)
    raw.to_csv(results / "generative.csv", index=False)
    summary = summarise(raw)
    summary.to_csv(results / "generative_summary.csv", index=False)
    plot(summary, results / "generative.png")
    seeds = {name: sorted(raw.loc[raw["experiment"].map(_experiment_of) == name, "seed"].unique().tolist())
             for name in CONFIGS}
    report = markdown(summary, steering_cost(), real_floor(), real_floor28(), seeds)
    (results / "generative.md").write_text(report)
    print(report)


def _experiment_of(label: str) -> str:
    """``dark_knowledge28@16,8,4/...`` -> ``dark_knowledge28``: the config a results label was run from."""
    return label.split("@")[0]


if __name__ == "__main__":
    main()
