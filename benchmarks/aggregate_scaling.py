"""Time and peak memory of ``fedkd aggregate`` as the label file grows, to show both stay proportional.

Writes a seeded synthetic crowd file per size (``rows / 5`` tasks with 5 labels each: 10 classes, 1,000
uniform annotators wrong 30 % of the time, task and worker ids as strings), then runs the real command
line, as a user would, once per method and size, offline (all labels at once) and online in chunks of
10,000 tasks. Wall time of the whole command (start-up, reading, aggregating, writing) and its peak
resident memory (``ru_maxrss`` of that one child) go to ``results/aggregate_scaling.csv``; the command
runs with its default of one torch thread.

    python benchmarks/aggregate_scaling.py [--rows 50000 500000 5000000] [--methods mv ds bila]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
LABELS_PER_TASK = 5
N_CLASSES = 10
N_WORKERS = 1000
NOISE = 0.3
CHUNK_TASKS = 10_000
# Runs the command in a child of a fresh interpreter, so RUSAGE_CHILDREN's peak is that command's alone.
_MEASURE = (
    "import resource, subprocess, sys, time; t = time.perf_counter(); "
    "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "print(r.returncode, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
    "print(r.stdout + r.stderr, file=sys.stderr)"
)


def write_crowd_file(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` labels, ``rows / 5`` tasks each answered by 5 distinct workers, as a task,worker,label CSV."""
    rng = np.random.default_rng(seed)
    n_tasks = rows // LABELS_PER_TASK
    truth = rng.integers(0, N_CLASSES, n_tasks)
    # base + k * stride with stride < N / 5 gives 5 distinct workers per task without a per-task draw.
    base = rng.integers(0, N_WORKERS, n_tasks)
    stride = rng.integers(1, N_WORKERS // LABELS_PER_TASK, n_tasks)
    workers = (base[:, None] + np.arange(LABELS_PER_TASK) * stride[:, None]) % N_WORKERS
    wrong = rng.random((n_tasks, LABELS_PER_TASK)) < NOISE
    shift = rng.integers(1, N_CLASSES, (n_tasks, LABELS_PER_TASK))
    labels = np.where(wrong, (truth[:, None] + shift) % N_CLASSES, truth[:, None])
    pd.DataFrame({
        "task": np.char.add("t", np.repeat(np.arange(n_tasks), LABELS_PER_TASK).astype(str)),
        "worker": np.char.add("w", workers.ravel().astype(str)),
        "label": labels.ravel(),
    }).to_csv(path, index=False)


def measure(labels: Path, method: str, chunked: bool, out: Path) -> dict[str, float]:
    """Run ``fedkd aggregate`` once; its wall seconds and peak memory in MiB."""
    cmd = [sys.executable, "-m", "fedkd.cli", "aggregate", str(labels), "--method", method,
           "--n-classes", str(N_CLASSES), "--out", str(out)]
    if chunked:
        cmd += ["--chunk-size", str(CHUNK_TASKS)]
    done = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], capture_output=True, text=True, check=True)
    code, seconds, peak_kib = done.stdout.split()
    if code != "0":
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr}")
    return {"seconds": float(seconds), "peak_mib": int(peak_kib) / 1024}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[50_000, 500_000, 5_000_000])
    parser.add_argument("--methods", nargs="+", default=["mv", "ds", "bila"])
    args = parser.parse_args(argv)
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            labels = Path(tmp) / f"labels_{rows}.csv"
            start = time.perf_counter()
            write_crowd_file(labels, rows)
            print(f"{rows} rows written in {time.perf_counter() - start:.1f} s "
                  f"({labels.stat().st_size / 2**20:.0f} MiB)", flush=True)
            for method in args.methods:
                for chunked in (False, True):
                    result = measure(labels, method, chunked, Path(tmp) / "out.csv")
                    mode = f"online@{CHUNK_TASKS}" if chunked else "offline"
                    records.append({"rows": rows, "method": method, "mode": mode, **result})
                    print(f"  {method:5s} {mode:13s} {result['seconds']:7.1f} s {result['peak_mib']:7.0f} MiB",
                          flush=True)
    RESULTS.mkdir(exist_ok=True)
    pd.DataFrame(records).to_csv(RESULTS / "aggregate_scaling.csv", index=False)


if __name__ == "__main__":
    main()
