"""``fedkd plot RUN_DIR``: accuracy curves as PNG next to metrics.csv."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="plot a run's metrics.csv to metrics.png")
    p.add_argument("run_dir", help="a run directory written by `fedkd run`")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from fedkd.plots import plot_run

    print(plot_run(args.run_dir))
    return 0
