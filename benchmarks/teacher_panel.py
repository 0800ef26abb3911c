"""How each teacher of the panel reads AEDM's queries: accuracy and answer collapse, no distillation.

AEDM asks the teacher about images its prior decodes (the public UCI digits, 8x8 scans, drawn into a 20x20 box of
the 28x28 frame: ``aedm.query_box``). Whether those answers teach anything depends on the teacher: if it reads
the queries as one class, no steering or training can help. For every teacher under ``teachers/`` of the
dataset, this measures, on the framed public digits (whose labels are known) and on samples of the shipped prior
``pretrained/prior-digits`` (``aedm.sampling_steps`` of ``simulations/aedm_mnist.toml``; no labels), for each of
a few simple query transforms (``fedkd.distill.transforms``: stroke thickening, blur, contrast, other boxes,
position jitter):

* ``accuracy``: the teacher's answers against the digits' labels (public digits only);
* ``top_share``: the share of the answers naming the most frequent class;
* ``entropy``: the answer histogram's entropy in nats (``fedkd.distill.histogram``; log 10 = 2.303 is even).

    python benchmarks/teacher_panel.py                 # ~3 min here
    python benchmarks/teacher_panel.py --teachers /tmp/mine --out /tmp/panel   # teachers the project does not ship

Writes ``benchmarks/results/teacher_panel.csv``, one row per (teacher, source, transform).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

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

    digits_x, digits_y = load_dataset("digits").tensors()
    sources = {"public_digits": (digits_x, digits_y), "prior": (prior_samples(n_prior, seed), None)}
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--teachers", nargs="*", type=Path, default=None,
                        help="teacher directories (default: teachers/DATASET-*)")
    parser.add_argument("--prior-samples", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    table = measure(args.dataset, args.teachers or teacher_dirs(args.dataset), args.prior_samples, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "teacher_panel.csv", index=False, float_format="%.4f")
    wide = table.pivot_table(index=["teacher", "transform"], columns="source",
                             values=["accuracy", "top_share", "entropy"])
    print(wide.round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
