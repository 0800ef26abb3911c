"""Label aggregators with one interface (see :class:`Aggregator`): majority vote, Dawid-Skene, BILA.

``build_aggregator(name, n_classes, seed=...)`` makes one by its registered name, which is what
configs, the CLI and federated clients use.
"""

from __future__ import annotations

import inspect

from fedkd.aggregation.base import Aggregator, EncodedChunk, predict_online
from fedkd.aggregation.bila import BILA, BILAConfig
from fedkd.aggregation.dawid_skene import DawidSkene
from fedkd.aggregation.majority_vote import MajorityVote
from fedkd.errors import ConfigError

AGGREGATORS: dict[str, type[Aggregator]] = {
    "mv": MajorityVote,
    "majority_vote": MajorityVote,
    "ds": DawidSkene,
    "dawid_skene": DawidSkene,
    "bila": BILA,
}


def build_aggregator(name: str, n_classes: int, seed: int = 0, **kwargs) -> Aggregator:
    """The aggregator registered as ``name``, for ``n_classes`` classes, seeded with ``seed``; ``kwargs`` are its
    own options (a ``ConfigError`` names any it does not take, before it is built)."""
    if name not in AGGREGATORS:
        raise ConfigError(f"unknown aggregator {name!r}; choose one of {', '.join(AGGREGATORS)}")
    cls = AGGREGATORS[name]
    params = inspect.signature(cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        own = [p for p in params if p not in ("n_classes", "seed")]
        unknown = sorted(set(kwargs) - set(own))
        if unknown:
            raise ConfigError(f"aggregator {name!r} has no option(s) {unknown}; it takes {own}")
    return cls(n_classes=n_classes, seed=seed, **kwargs)


__all__ = [
    "AGGREGATORS",
    "BILA",
    "Aggregator",
    "BILAConfig",
    "DawidSkene",
    "EncodedChunk",
    "MajorityVote",
    "build_aggregator",
    "predict_online",
]
