"""Resident memory of a process tree, for per-round resource metrics.

A Ray simulation's memory lives in many processes (the driver, Ray's daemons, one actor per concurrent
client), so the process's own RSS says little; the sum over its descendants is what a user must provision.
Read from /proc: Linux only (``None`` elsewhere).
"""

from __future__ import annotations

import os
from pathlib import Path


def tree_rss_bytes(root: int | None = None) -> int | None:
    """Resident bytes of process ``root`` (default: this one) and all its descendants; None without /proc."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    root = os.getpid() if root is None else root
    page = os.sysconf("SC_PAGE_SIZE")
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields[21]) * page
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total
