"""``fedkd run`` as a separate process that tests can send real signals to (SIGINT as Ctrl-C sends it, SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STOP_SECONDS = 10  # the bound from one Ctrl-C to the process's exit


def start_run(config: Path, overrides: dict[str, object], out: Path) -> subprocess.Popen[str]:
    """``fedkd run`` in its own session (a process group, as a terminal's foreground job is)."""
    args = [f"--set={key}={value}" for key, value in overrides.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FEDKD_QUIET": "1"}
    return subprocess.Popen([sys.executable, "-m", "fedkd.cli", "run", str(config), *args, "--out", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended before {path.name} appeared: {proc.stderr.read()}"
        assert time.monotonic() < deadline, f"{path.name} did not appear within {timeout} s"
        time.sleep(0.05)


def stop(proc: subprocess.Popen[str], send: Callable[[int, int], None], signum: int) -> tuple[int, float, str]:
    """Send ``signum`` with ``send`` (``os.kill``, or ``os.killpg`` as Ctrl-C); return the exit code, the seconds
    it took to exit, and stderr's last line."""
    start = time.monotonic()
    send(proc.pid, signum)
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"the run did not exit within 60 s of {signal.Signals(signum).name}") from None
    return proc.returncode, time.monotonic() - start, stderr.strip().splitlines()[-1]


def latest_checkpoint(out: Path) -> int:
    return int(sorted((out / "checkpoints").glob("ckpt-*.json"))[-1].stem.split("-")[1])
