"""fedkd: federated knowledge distillation from imperfect sources (crowd labels, black-box and generative teachers).

``fedkd.run`` and ``fedkd.load_config`` load lazily, so ``import fedkd`` (and the CLI's start-up) does not
pay for torch and pandas until a run needs them.
"""

from typing import Any

__all__ = ["load_config", "run"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "run":
        from fedkd.api import run

        return run
    if name == "load_config":
        from fedkd.config import load_config

        return load_config
    raise AttributeError(f"module 'fedkd' has no attribute {name!r}")
