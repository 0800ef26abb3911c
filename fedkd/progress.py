"""Progress bars that stay quiet where nobody watches them (CI, pipes, Ray workers)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm


def quiet() -> bool:
    """True in CI, when FEDKD_QUIET is set, or when stderr is not a terminal."""
    return bool(os.environ.get("CI") or os.environ.get("FEDKD_QUIET")) or not sys.stderr.isatty()


def progress(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "", **kwargs: Any) -> tqdm:
    return tqdm(iterable, total=total, desc=desc, disable=quiet(), dynamic_ncols=True, **kwargs)
