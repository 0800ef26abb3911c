"""What a run shows while it goes: progress bars on a terminal, one plain line per evaluation elsewhere.

A person at a terminal gets tqdm bars (on stderr). Output that goes to a pipe, a file or CI gets no bars
(their carriage returns make a log unreadable) but one line per evaluation of the global model on stdout,
``round 3: test_acc 0.7123, 12.4 s, 3,000 queries``, so a run that takes minutes is never silent.
``FEDKD_QUIET=1`` silences both.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm.auto import tqdm


def _silenced() -> bool:
    return bool(os.environ.get("FEDKD_QUIET"))


def quiet() -> bool:
    """True where progress bars would not be watched: CI, FEDKD_QUIET, or stdout not a terminal."""
    return _silenced() or bool(os.environ.get("CI")) or not sys.stdout.isatty()


def progress(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "", **kwargs: Any) -> tqdm:
    return tqdm(iterable, total=total, desc=desc, disable=quiet(), dynamic_ncols=True, **kwargs)


class EvaluationLines:
    """Prints one line per evaluation of the global model when the bars are off (see the module docstring).

    ``seconds`` is the time since the previous evaluation (or since this object was made): a federated
    round's duration, or the time a black-box run took for the queries since its last evaluation.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.enabled = not _silenced() and (stream is not None or not sys.stdout.isatty())
        self._last = time.perf_counter()

    def evaluation(self, value: float, *, round: int | None, step: int | None, queries: int | None) -> None:
        now = time.perf_counter()
        seconds, self._last = now - self._last, now
        if not self.enabled:
            return
        where = f"round {round}" if round is not None else f"step {step}"
        spent = "" if queries is None else f", {queries:,} queries"
        print(f"{where}: test_acc {value:.4f}, {seconds:.1f} s{spent}", file=self.stream or sys.stdout, flush=True)
