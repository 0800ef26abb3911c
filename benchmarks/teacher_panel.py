"""How each teacher of the panel reads AEDM's queries: accuracy and answer collapse, no distillation.

AEDM asks the teacher about images its prior decodes, drawn into a 20x20 box of the 28x28 frame
(``aedm.query_box``). Whether those answers teach anything depends on the teacher: if it reads the queries as one
class, no steering or training can help. For every teacher under ``teachers/`` of the dataset, this measures, on
two public digit sets whose labels are known (the UCI digits, 8x8 scans, which the earlier prior
``pretrained/prior-digits`` learnt; the font digits ``fonts16``, which the shipped prior ``pretrained/prior-fonts16``
learnt) and on samples of the shipped prior (``aedm.sampling_steps`` of ``simulations/aedm_mnist.toml``; no
labels), for each of a few simple query transforms (``fedkd.distill.transforms``: stroke thickening, blur,
contrast, other boxes, position jitter):

* ``accuracy``: the teacher's answers against the digits' labels (public digit sets only);
* ``top_share``: the share of the answers naming the most frequent class;
* ``entropy``: the answer histogram's entropy in nats (``fedkd.distill.histogram``; log 10 = 2.303 is even).

It also records which framing AEDM's adaptation (``aedm.adapt_queries``) picks for each teacher from its answers
alone (``teacher_panel_choice.csv``: the first 1,536 queries of an AEDM run, two prior seeds), and with
``--distill`` runs ``simulations/aedm_mnist.toml`` with only ``teacher.path`` (and ``run.seed``) changed, as shipped
(``fonts-adjusted``: the student with logit adjustment), without the adjustment as shipped before (``fonts``), with
the earlier digits prior (``adapted``: the framing adapted as shipped with it; ``fixed``:
``aedm.adapt_queries = 0``, ``aedm.learn_plain = false``; ``selected``: ``aedm.select_from = 4``), and with
``--variants tandemgan-adjusted`` ``simulations/tandemgan_mnist.toml`` as shipped (its stroke body and logit
adjustment; ``tandemgan-strokes``: without the adjustment; ``tandemgan``: with the MLP body it had before), for
every teacher
(``teacher_panel_distill.csv``: the final student, its ratio to the teacher, the answer histogram and the run's
time). The other methods and modes of ``benchmarks/blackbox_distill.py`` are variants too (``real``, ``random``,
``dfme``, ``dfme-proba``, ``tandemgan-proba``, ``fonts-adjusted-proba``, and without AEDM's adjustment
``fonts-steered`` and ``fonts-proba``; :data:`METHOD_CELLS`), for the
README's per-(teacher, method, mode) table. ``--dataset digits28`` runs the digits28 panel with
``tandemgan_digits28.toml`` (it has no AEDM config). Runs are kept under ``--runs`` and a finished one is read
back, not run again.

    python benchmarks/teacher_panel.py                 # the diagnostic, ~3 min here
    python benchmarks/teacher_panel.py --teachers /tmp/mine --out /tmp/panel   # teachers the project does not ship
    python benchmarks/teacher_panel.py --distill --seeds 0 1   # 8-12 min per run here, two sharing the cores
    python benchmarks/teacher_panel.py --distill --variants tandemgan-adjusted --seeds 0 1   # 3-12 min per run here
    python benchmarks/teacher_panel.py --distill --dataset digits28 --variants tandemgan tandemgan-adjusted

Writes ``benchmarks/results/teacher_panel.csv``, one row per (teacher, source, transform).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from fedkd_benchmarks.result_rows import merge_rows

ROOT = Path(__file__).resolve().parents[1]


def teacher_dirs(dataset: str) -> list[Path]:
    """The shipped teachers of ``dataset``: ``teachers/DATASET-*``."""
    return sorted(p for p in (ROOT / "teachers").glob(f"{dataset}-*") if (p / "teacher.json").exists())


def prior_samples(n: int, seed: int) -> torch.Tensor:
    """``n`` decoded samples of the shipped prior at its own size, as ``simulations/aedm_mnist.toml`` draws them."""
    from fedkd.config import load_config
    from fedkd.distill.aedm import AEDM, load_aedm_prior

    cfg = load_config(ROOT / "simulations" / "aedm_mnist.toml")
    aedm = AEDM(cfg.aedm, load_aedm_prior(cfg.aedm, "mnist5k", channels=1), 28, seed=seed)
    return aedm.decode(aedm.noise(n))


def answer_row(answers: torch.Tensor, labels: torch.Tensor | None) -> dict[str, float]:
    from fedkd.distill.histogram import AnswerHistogram

    histogram = AnswerHistogram()
    histogram.add(answers)
    accuracy = float("nan") if labels is None else float((answers == labels).float().mean())
    return {"accuracy": accuracy, "top_share": histogram.top_share(), "entropy": histogram.entropy(),
            "top_class": int(histogram.counts.argmax())}


def measure(dataset: str, teachers: list[Path], n_prior: int, seed: int) -> pd.DataFrame:
    from fedkd.data import load_dataset
    from fedkd.distill.transforms import TRANSFORMS, query_transform
    from fedkd.teachers import load_teacher, teacher_splits
    from fedkd.train import predict_logits

    sources = {"public_digits": load_dataset("digits").tensors(), "font_digits": load_dataset("fonts16").tensors(),
               "prior": (prior_samples(n_prior, seed), None)}
    rows = []
    for path in teachers:
        teacher = load_teacher(path, dataset=dataset)
        _, test = teacher_splits(teacher.info)
        x_test, y_test = test.tensors()
        teacher_acc = float((predict_logits(teacher.model, x_test).argmax(1) == y_test).float().mean())
        for source, (small, labels) in sources.items():
            for name in TRANSFORMS:
                queries = query_transform(name, 28, seed)(small)
                answers = predict_logits(teacher.model, queries).argmax(1)
                rows.append({"teacher": path.name, "model": teacher.info.model, "teacher_seed": teacher.info.seed,
                             "teacher_acc": teacher_acc, "source": source, "transform": name,
                             **answer_row(answers, labels)})
        print(f"{path.name}: teacher_acc {teacher_acc:.3f}", flush=True)
    return pd.DataFrame(rows)


def adaptation_choices(teachers: list[Path], dataset: str, seeds: list[int]) -> pd.DataFrame:
    """The framing AEDM's adaptation keeps for each teacher (``AEDM.chosen`` after the probing queries of
    ``simulations/aedm_mnist.toml``, in label mode), with the answer entropy of the plain framing and of the chosen
    one."""
    from dataclasses import replace

    from fedkd.config import load_config
    from fedkd.distill.aedm import AEDM, load_aedm_prior
    from fedkd.distill.loop import BlackBoxDistiller, DistillConfig
    from fedkd.models import build_classifier
    from fedkd.oracle import ModelOracle
    from fedkd.teachers import load_teacher

    config = replace(load_config(ROOT / "simulations" / "aedm_mnist.toml").aedm, offline_epochs=0)
    prior = load_aedm_prior(config, dataset, channels=1)
    rows = []
    for path in teachers:
        teacher = load_teacher(path, dataset=dataset)
        for seed in seeds:
            aedm = AEDM(config, prior, 28, seed=seed)
            oracle = ModelOracle(teacher.model, mode="label", budget=config.adapt_queries)
            student = build_classifier("lenet5", 1, 28, 10)
            BlackBoxDistiller(student, oracle, aedm, DistillConfig(method="aedm", batch_size=64, student_steps=0)).run()
            choice = aedm.chosen()
            rows.append({"teacher": path.name, "model": teacher.info.model, "teacher_seed": teacher.info.seed,
                         "seed": seed, "chosen": aedm.transforms[choice].name,
                         "plain_entropy": aedm.answers[0].entropy(), "chosen_entropy": aedm.answers[choice].entropy()})
    return pd.DataFrame(rows)


#: The prior every AEDM variant but the ``fonts`` ones ran with: the UCI digits' 8x8 prior, shipped before the font
#: digits'.
DIGITS_PRIOR: dict[str, object] = {"aedm.prior": "pretrained/prior-digits", "aedm.prior_dataset": "digits"}

#: The student's plain loss and its loss with logit adjustment, pinned in each variant so that it reruns what was
#: recorded whichever the config ships: ``aedm_mnist.toml`` shipped the plain loss until logit adjustment became its
#: default, and the AEDM variants measured before that keep it.
UNADJUSTED: dict[str, object] = {"distill.logit_adjustment": 0.0}
ADJUSTED: dict[str, object] = {"distill.logit_adjustment": 1.0}

#: ``--distill``'s variants, each the kind of shipped config it changes (``aedm``: ``aedm_mnist.toml``;
#: ``tandemgan``: the dataset's TandemGAN config, ``tandemgan_mnist.toml`` or ``tandemgan_digits28.toml``) and its
#: overrides: ``simulations/aedm_mnist.toml`` as shipped (``fonts-adjusted``: the font digits' 16x16 prior, the
#: student trained with logit adjustment), in proba mode (``fonts-adjusted-proba``) and steered
#: (``fonts-adjusted-steered``); without the adjustment, as shipped before (``fonts``), and so decoded with 4 DDIM
#: steps, not 8 (``fonts-steps4``), steered (``fonts-steered``) and in proba mode (``fonts-proba``); with the UCI
#: digits' prior, no adjustment, framing adapted as shipped with it (``adapted``), fixed (``fixed``) and with each
#: query selected from four decoded images towards the classes the teacher has named least (``selected``);
#: ``simulations/tandemgan_mnist.toml`` with its stroke body and logit adjustment as shipped
#: (``tandemgan-adjusted``), with the stroke body alone (``tandemgan-strokes``: pen strokes on a dark background)
#: and with the MLP body it shipped before that (``tandemgan``: smooth grey images); ``tandemgan-proba-plain`` is
#: its proba mode without the adjustment, which proba mode ignored until the adjustment applied to both modes;
#: ``tandemgan-view`` has its generator play against the student as the loss sees it
#: (``distill.synthesizer_view = "adjusted"``).
DISTILL_VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    "fonts-adjusted": ("aedm", ADJUSTED),
    "fonts-adjusted-proba": ("aedm", {**ADJUSTED, "distill.mode": "proba"}),
    "fonts-adjusted-steered": ("aedm", {**ADJUSTED, "aedm.steer": True}),
    "fonts": ("aedm", UNADJUSTED),
    "fonts-steps4": ("aedm", {**UNADJUSTED, "aedm.sampling_steps": 4}),
    "fixed": ("aedm", {**UNADJUSTED, **DIGITS_PRIOR, "aedm.adapt_queries": 0, "aedm.learn_plain": False}),
    "adapted": ("aedm", {**UNADJUSTED, **DIGITS_PRIOR}),
    "selected": ("aedm", {**UNADJUSTED, **DIGITS_PRIOR, "aedm.select_from": 4}),
    "tandemgan": ("tandemgan", {"tandemgan.body": "mlp", **UNADJUSTED}),
    "tandemgan-strokes": ("tandemgan", {"tandemgan.body": "strokes", **UNADJUSTED}),
    "tandemgan-adjusted": ("tandemgan", {"tandemgan.body": "strokes", **ADJUSTED}),
    "tandemgan-view": ("tandemgan", {"distill.synthesizer_view": "adjusted"}),
    "fonts-steered": ("aedm", {**UNADJUSTED, "aedm.steer": True}),
    "fonts-proba": ("aedm", {**UNADJUSTED, "distill.mode": "proba"}),
    "tandemgan-proba": ("tandemgan", {"distill.mode": "proba"}),
    "tandemgan-proba-plain": ("tandemgan", {"distill.mode": "proba", **UNADJUSTED}),
    "dfme": ("tandemgan", {"distill.method": "dfme"}),
    "dfme-proba": ("tandemgan", {"distill.method": "dfme", "distill.mode": "proba"}),
    "random": ("tandemgan", {"distill.method": "random"}),
    "real": ("tandemgan", {"distill.method": "real"}),
}

#: The (method, answer mode) each variant runs, for the per-(teacher, method, mode) table, which keeps on each dataset
#: the variants that leave its config as shipped apart from the method and mode (:func:`as_shipped`), as
#: ``benchmarks/blackbox_distill.py`` runs them on one teacher. ``aedm-plain`` is ``aedm_mnist.toml`` as shipped
#: (plain prior samples), ``aedm`` the same steered towards the student's uncertainty; ``dfme``, ``random`` (uniform
#: noise) and ``real`` (unlabeled images of the teacher's training split) run with the TandemGAN config's student,
#: optimizer, budget and logit adjustment. TandemGAN's label cell is ``tandemgan-adjusted`` on mnist5k and
#: ``tandemgan`` (the MLP body, no adjustment) on digits28, as each config ships.
METHOD_CELLS: dict[str, tuple[str, str]] = {
    "fonts-adjusted": ("aedm-plain", "label"), "fonts-adjusted-proba": ("aedm-plain", "proba"),
    "fonts-adjusted-steered": ("aedm", "label"),
    "tandemgan-adjusted": ("tandemgan", "label"), "tandemgan": ("tandemgan", "label"),
    "tandemgan-proba": ("tandemgan", "proba"), "dfme": ("dfme", "label"), "dfme-proba": ("dfme", "proba"),
    "random": ("random", "label"), "real": ("real", "label"),
}


#: The settings that choose the method and answer mode rather than change how a method runs.
METHOD_SETTINGS = ("distill.method", "distill.mode", "aedm.steer")


def as_shipped(variant: str, dataset: str) -> bool:
    """Whether ``dataset`` has a config for the variant and the variant runs it as shipped, apart from the settings
    that choose the method and mode (:data:`METHOD_SETTINGS`)."""
    from fedkd.config import load_config

    found = variant_config(variant, dataset)
    if found is None:
        return False
    config, settings = found
    rest = {k: v for k, v in settings.items() if k not in METHOD_SETTINGS}
    path = ROOT / "simulations" / config
    return load_config(path, rest).to_dict() == load_config(path).to_dict()


def variant_config(variant: str, dataset: str) -> tuple[str, dict[str, object]] | None:
    """The shipped config the variant changes for ``dataset`` (``blackbox_distill``'s configs per dataset) and its
    settings, or None where the dataset has no config of the variant's kind."""
    from fedkd_benchmarks.blackbox_distill import AEDM_CONFIGS, CONFIGS

    kind, settings = DISTILL_VARIANTS[variant]
    configs = AEDM_CONFIGS if kind == "aedm" else CONFIGS
    return (configs[dataset], settings) if dataset in configs else None


def require_config(variant: str, dataset: str) -> tuple[str, dict[str, object]]:
    """:func:`variant_config`, or exit in one line naming the datasets that have the variant's config."""
    found = variant_config(variant, dataset)
    if found is None:
        from fedkd_benchmarks.blackbox_distill import AEDM_CONFIGS, CONFIGS

        have = [d for d in dict.fromkeys([*CONFIGS, *AEDM_CONFIGS]) if variant_config(variant, d) is not None]
        raise SystemExit(f"variant {variant!r} has no config for dataset {dataset!r}; it runs on {', '.join(have)}")
    return found


def distill_row(teacher: Path, dataset: str, variant: str, seed: int, runs: Path) -> dict[str, object]:
    """One run of the variant's config with only ``teacher.path``, ``run.seed`` and the variant's settings changed."""
    import fedkd

    out = runs / f"{teacher.name}-{variant}-s{seed}"
    path = teacher.relative_to(ROOT) if teacher.is_relative_to(ROOT) else teacher
    config, settings = require_config(variant, dataset)
    overrides = {"teacher.path": str(path), "run.seed": seed, **settings}
    result = fedkd.run(ROOT / "simulations" / config, overrides=overrides, out=out,
                       resume=(out / "config.toml").exists())
    m = result.metrics
    seconds = m[m["metric"].isin([f"seconds/{part}" for part in ("teacher", "generator", "student", "store")])]
    row = {"teacher": teacher.name, "variant": variant, "seed": seed, "teacher_acc": result.final("teacher_acc"),
           "test_acc": result.final("test_acc"), "queries": int(result.final("queries")),
           "answer_entropy": result.final("answer_entropy"), "answer_top_share": result.final("answer_top_share"),
           "seconds": float(seconds["value"].sum())}
    row["ratio"] = row["test_acc"] / row["teacher_acc"]
    print(f"{out.name}: test_acc {row['test_acc']:.4f} ({row['ratio']:.3f} of the teacher)", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--teachers", nargs="*", type=Path, default=None,
                        help="teacher directories (default: teachers/DATASET-*)")
    parser.add_argument("--prior-samples", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--distill", action="store_true", help="run the --variants' configs on every teacher instead")
    parser.add_argument("--variants", nargs="+", default=["fonts-adjusted"], choices=list(DISTILL_VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "teacher_panel")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    teachers = args.teachers or teacher_dirs(args.dataset)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.distill:
        path = args.out / "teacher_panel_distill.csv"
        for variant in args.variants:
            require_config(variant, args.dataset)
        rows = [distill_row(t, args.dataset, variant, seed, args.runs) for seed in args.seeds for t in teachers
                for variant in args.variants]
        table = merge_rows(pd.DataFrame(rows), path, ["teacher", "variant", "seed"])
        table.to_csv(path, index=False, float_format="%.4f")
        print(table.to_string(index=False))
        return 0
    choices = adaptation_choices(teachers, args.dataset, [0, 1])
    choices.to_csv(args.out / "teacher_panel_choice.csv", index=False, float_format="%.4f")
    print(choices.to_string(index=False))
    table = measure(args.dataset, teachers, args.prior_samples, args.seed)
    table.to_csv(args.out / "teacher_panel.csv", index=False, float_format="%.4f")
    wide = table.pivot_table(index=["teacher", "transform"], columns="source",
                             values=["accuracy", "top_share", "entropy"])
    print(wide.round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
