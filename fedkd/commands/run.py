"""``fedkd run CONFIG [--set k=v ...] [--out DIR] [--resume]``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run an experiment config (simulations/*.toml)")
    p.add_argument("config", help="experiment TOML, e.g. simulations/quickstart.toml")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set federation.num_clients=20 (repeatable)",
    )
    p.add_argument("--out", help="run directory (default runs/<name>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from fedkd.api import run
    from fedkd.errors import ConfigError

    if args.resume and not args.out:
        raise ConfigError("--resume needs --out DIR naming the run to continue")
    result = run(args.config, overrides=args.overrides, out=args.out, resume=args.resume)
    print(f"run directory: {result.path}")
    summary = result.metrics[result.metrics["client"].isna()].groupby("metric", sort=True)["value"].last()
    for metric, value in summary.items():
        print(f"  final {metric}: {value:.4g}")
    return 0
