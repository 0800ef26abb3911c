"""Stopping a run when told: SIGINT and SIGTERM set one flag that every kind's loops and the run directory check.

A run may span threads it does not own (Flower runs the server loop in its own thread, Ray its actors in other
processes), so a signal cannot simply unwind one stack. Instead the first SIGINT or SIGTERM

* sets a process-wide flag: from then on :class:`fedkd.runs.RunDir` refuses to write a row or a checkpoint,
  and loops that call :func:`check_stop` (the federated server's message waits, the black-box loop) raise
  :class:`RunInterrupted` at their next check;
* raises ``KeyboardInterrupt`` in the main thread, so code that never checks (Ray start-up, a long data load)
  is left at once, unless the main thread is inside a run-directory write (:func:`critical`), which then
  finishes first and raises at its end.

A second signal ends the process at once (``os._exit``): the run directory is consistent at every moment a
write is not in progress, and ``--resume`` rolls it back to its last complete checkpoint anyway.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_stop = threading.Event()
_signum: list[int] = []
_main_thread_writing = [0]


class RunInterrupted(Exception):
    """The run was stopped by a signal; its directory holds what its last complete checkpoint covers."""

    def __init__(self, signum: int, detail: str = "") -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}" + (f"; {detail}" if detail else ""))

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number."""
        return 128 + self.signum


def request_stop(signum: int = signal.SIGINT) -> None:
    """Ask every loop of the current run to stop (what the signal handler does, callable from anywhere)."""
    if not _stop.is_set():
        _signum.append(signum)
        _stop.set()


def clear_stop() -> None:
    """Forget a stop request (a new run starts); until then, an interrupted run's directory refuses writes."""
    _stop.clear()
    _signum.clear()


def check_stop() -> None:
    """Raise :class:`RunInterrupted` if a stop was requested; loops call this between units of work."""
    if _stop.is_set():
        raise RunInterrupted(_signum[0])


def wait_or_stop(seconds: float) -> None:
    """Sleep up to ``seconds``, waking (and raising :class:`RunInterrupted`) as soon as a stop is requested."""
    _stop.wait(seconds)
    check_stop()


@contextmanager
def critical() -> Iterator[None]:
    """A write the signal handler must not cut in two (in the main thread; other threads are never interrupted)."""
    main = threading.current_thread() is threading.main_thread()
    _main_thread_writing[0] += main
    try:
        yield
    finally:
        _main_thread_writing[0] -= main


def _handle(signum: int, frame: FrameType | None) -> None:
    del frame
    if _stop.is_set():
        print(f"fedkd: second {signal.Signals(signum).name}; exiting now", file=sys.stderr, flush=True)
        os._exit(128 + signum)
    request_stop(signum)
    if not _main_thread_writing[0]:
        raise KeyboardInterrupt


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Route SIGINT and SIGTERM to the stop flag while a run goes (the flag starts clear), then restore handlers.

    Outside the main thread signals cannot be handled; there only :func:`request_stop` stops a run.
    """
    clear_stop()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handle) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def interruption(exc: BaseException) -> RunInterrupted | None:
    """The :class:`RunInterrupted` that ``exc`` stands for, or None if ``exc`` is not an interruption.

    Besides our own exceptions this recognises ``SystemExit(15)``: Ray's driver replaces the SIGTERM handler
    with ``sys.exit(signum)`` when it starts, so a SIGTERM during a federated run arrives as that.
    """
    if isinstance(exc, RunInterrupted):
        return exc
    if isinstance(exc, KeyboardInterrupt):
        request_stop(signal.SIGINT)
        return RunInterrupted(_signum[0])
    if isinstance(exc, SystemExit) and exc.code == signal.SIGTERM:
        request_stop(signal.SIGTERM)
        return RunInterrupted(_signum[0])
    return None
