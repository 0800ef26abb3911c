"""``fedkd aggregate``: estimate each task's true label from crowd labels in a CSV, offline or online."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "aggregate",
        help="aggregate crowd labels (task,worker,label CSV) into one label per task",
        description="Aggregate crowd labels into task,label. With --chunk-size the tasks are processed online in "
        "chunks in file order, and each task keeps the label emitted when its chunk arrived.",
    )
    p.add_argument("labels", help="CSV with columns task,worker,label (labels 0..C-1)")
    p.add_argument("--method", default="bila", help="aggregator: bila, ds or mv (default bila; see `fedkd list`)")
    p.add_argument("--n-classes", type=int, required=True, help="number of classes C")
    p.add_argument("--chunk-size", type=int, default=None, help="tasks per chunk for online aggregation")
    p.add_argument("--seed", type=int, default=0, help="run seed (tie-breaking, BILA initialisation)")
    p.add_argument("--gold", default=None, help="CSV with columns task,true_label: print accuracy on these tasks")
    p.add_argument("--out", required=True, help="output CSV with columns task,label")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    import time

    import pandas as pd

    from fedkd.aggregation import build_aggregator
    from fedkd.aggregation.base import predict_online
    from fedkd.data.crowd import chunk_tasks, gold_accuracy, read_crowd_csv, read_gold_csv
    from fedkd.errors import ConfigError

    if args.chunk_size is not None and args.chunk_size < 1:
        raise ConfigError(f"--chunk-size must be >= 1, got {args.chunk_size}")
    agg = build_aggregator(args.method, args.n_classes, seed=args.seed)
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
    labels.rename("label").rename_axis("task").reset_index().to_csv(args.out, index=False)
    print(f"{args.method} ({mode}): {len(labels)} tasks from {len(df)} labels by {df['worker'].nunique()} workers "
          f"in {seconds:.2f} s -> {args.out}")
    if gold is not None:
        accuracy, n_gold = gold_accuracy(labels, gold)
        print(f"accuracy on {n_gold} gold tasks: {accuracy:.4f}")
    return 0
