"""``fedkd aggregate``: estimate each task's true label from crowd labels in a CSV, offline or online.

Every argument is checked before any label is read or aggregated (a 5-million-row file takes minutes), and
the output is written to a temporary file beside ``--out`` and renamed over it only when complete, so a
failure never leaves a half-written file and ``--out`` can never be one of the inputs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

INT64_MAX = 2**63 - 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "aggregate",
        help="aggregate crowd labels (task,worker,label CSV) into one label per task",
        description="Aggregate crowd labels into task,label. With --chunk-size the tasks are processed online in "
        "chunks in file order, and each task keeps the label emitted when its chunk arrived. Task and worker ids "
        "are read as strings: 007 and 7 are different tasks.",
    )
    p.add_argument("labels", help="UTF-8 CSV with columns task,worker,label (labels 0..C-1)")
    p.add_argument("--method", default="bila", help="aggregator: bila, ds or mv (default bila; see `fedkd list`)")
    p.add_argument("--n-classes", type=int, required=True, help="number of classes C")
    p.add_argument("--chunk-size", type=int, default=None, help="tasks per chunk for online aggregation")
    p.add_argument("--seed", type=int, default=0, help="run seed (tie-breaking, BILA initialisation)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: BILA's small per-chunk tensors run slower on more)")
    p.add_argument("--gold", default=None, help="CSV with columns task,true_label: print accuracy on these tasks")
    p.add_argument("--out", required=True, help="output CSV with columns task,label (its folder must exist)")
    p.set_defaults(func=handle)


def reserve_out_path(out: str, inputs: dict[str, str | None]) -> tuple[Path, Path]:
    """Check ``--out`` and create the empty file its result will be written to before being renamed over it.

    Returns ``(out, partial)``. A directory, a missing folder, one of ``inputs`` (flag -> path) or a place
    where no file can be created is a ConfigError, raised before any work so that a bad ``--out`` costs
    nothing; creating the partial file is the only test of writability that holds for root and odd filesystems.
    """
    from fedkd.errors import ConfigError

    path = Path(out)
    folder = path.parent
    if path.is_dir():
        raise ConfigError(f"--out {out!r} is a directory; give a file path, e.g. {str(path / 'labels.csv')!r}")
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {out!r}: {str(folder)!r} is not a folder")
    if not folder.is_dir():
        raise ConfigError(f"--out {out!r}: folder {str(folder)!r} does not exist; create it first")
    for flag, given in inputs.items():
        if given is not None and path.exists() and Path(given).exists() and os.path.samefile(given, path):
            raise ConfigError(f"--out {out!r} is the {flag} file; writing there would overwrite the input")
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.open("x").close()
    except OSError as err:
        raise ConfigError(f"--out {out!r} is not writable: {err.strerror}") from None
    if path.exists() and not os.access(path, os.W_OK):
        partial.unlink()
        raise ConfigError(f"--out {out!r} is not writable: permission denied")
    return path, partial


def _check_int(flag: str, value: int | None, low: int) -> None:
    from fedkd.errors import ConfigError

    if value is not None and not low <= value <= INT64_MAX:
        raise ConfigError(f"{flag} must be an integer in {low}..{INT64_MAX}, got {value}")


def handle(args: argparse.Namespace) -> int:
    from fedkd.errors import ConfigError

    _check_int("--chunk-size", args.chunk_size, 1)
    _check_int("--n-classes", args.n_classes, 2)
    if not 1 <= args.threads <= (os.cpu_count() or 1):
        raise ConfigError(f"--threads must be in 1..{os.cpu_count() or 1} (this machine's cores), got {args.threads}")
    out, partial = reserve_out_path(args.out, {"labels": args.labels, "--gold": args.gold})
    try:
        return _aggregate(args, out, partial)
    finally:
        partial.unlink(missing_ok=True)


def _aggregate(args: argparse.Namespace, out: Path, partial: Path) -> int:
    import time

    import pandas as pd
    import torch

    from fedkd.aggregation import build_aggregator
    from fedkd.aggregation.base import predict_online
    from fedkd.data.crowd import chunk_tasks, gold_accuracy, read_crowd_csv, read_gold_csv

    agg = build_aggregator(args.method, args.n_classes, seed=args.seed)
    torch.set_num_threads(args.threads)
    df = read_crowd_csv(args.labels, args.n_classes)
    gold = read_gold_csv(args.gold, args.n_classes) if args.gold else None
    start = time.perf_counter()
    if args.chunk_size is None:
        labels = agg.fit_predict(df)
        mode = "offline"
    else:
        chunks = chunk_tasks(df, chunk_size=args.chunk_size)
        labels = pd.concat(list(predict_online(agg, chunks)))
        mode = f"online, {len(chunks)} chunks of {args.chunk_size} tasks"
    seconds = time.perf_counter() - start
    labels.rename("label").rename_axis("task").reset_index().to_csv(partial, index=False)
    os.replace(partial, out)
    print(f"{args.method} ({mode}): {len(labels)} tasks from {len(df)} labels by {df['worker'].nunique()} workers "
          f"in {seconds:.2f} s -> {args.out}")
    if gold is not None:
        accuracy, n_gold = gold_accuracy(labels, gold)
        print(f"accuracy on {n_gold} gold tasks: {accuracy:.4f}")
    return 0
