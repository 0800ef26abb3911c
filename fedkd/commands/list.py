"""``fedkd list``: what is registered — datasets, models, aggregators, experiment kinds, strategies."""

from __future__ import annotations

import argparse
from importlib.metadata import entry_points


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered datasets, models, aggregators, experiment kinds and strategies")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from fedkd.aggregation import AGGREGATORS
    from fedkd.config import experiment_kinds
    from fedkd.data import DATASETS
    from fedkd.data.crowd import CROWD_SETS
    from fedkd.models import CLASSIFIERS

    groups = {
        "datasets": dict(DATASETS),
        "crowd sets": {name: "" for name in CROWD_SETS},
        "classifiers": dict(CLASSIFIERS),
        "aggregators": {name: (cls.__doc__ or "").strip().splitlines()[0] for name, cls in AGGREGATORS.items()},
        "experiment kinds": experiment_kinds(),
        "strategies": {ep.name: ep.value for ep in entry_points(group="fedkd.strategies")},
    }
    for title, items in groups.items():
        print(f"{title}:")
        for name, text in items.items():
            print(f"  {name:<18} {text}")
    return 0
