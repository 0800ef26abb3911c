"""Strategies by name: the built-ins plus any installed plug-in.

A third-party package makes its strategy usable in a config (``[federation] strategy = "mine"``) by
declaring an entry point in the ``fedkd.strategies`` group that points at a ``FederatedStrategy`` subclass;
``pip install`` is all it takes.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from fedkd.errors import ConfigError
from fedkd_strategies.base import FederatedStrategy

ENTRY_POINT_GROUP = "fedkd.strategies"


def available_strategies() -> dict[str, str]:
    """Name -> ``module:Class`` of every installed strategy (built-ins are entry points of fedkd itself)."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def get_strategy(name: str) -> type[FederatedStrategy]:
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not matches:
        raise ConfigError(
            f"federation.strategy = {name!r} is not installed; choose one of {sorted(available_strategies())}"
        )
    cls = matches[0].load()
    if not (isinstance(cls, type) and issubclass(cls, FederatedStrategy)):
        raise ConfigError(f"strategy entry point {matches[0].value!r} is not a FederatedStrategy subclass")
    return cls
