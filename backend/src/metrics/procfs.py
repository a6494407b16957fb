"""A process's start time, CPU time and resident memory, from /proc (Linux).

The metrics process reads them for each live worker at scrape time, rather than each worker
reporting its own: the figures are those of the moment of the scrape, and no worker spends
time on them.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Usage:
    start_time: float  # seconds since the Unix epoch
    cpu_seconds: float  # user + system
    resident_bytes: int


@functools.cache
def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


@functools.cache
def _page_size() -> int:
    return os.sysconf("SC_PAGE_SIZE")


@functools.cache
def _boot_time() -> float:
    for line in (PROC / "stat").read_text(encoding="ascii").splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("no btime line in /proc/stat")


def usage(pid: int) -> Usage | None:
    """The process's figures; None if it is gone (or a zombie)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and ")", so split after the last ")".
    # Field N of proc(5) is fields[N - 3]: utime 14, stime 15, starttime 22, rss 24.
    fields = stat.rpartition(")")[2].split()
    if len(fields) < 22 or fields[0] == "Z":
        return None
    ticks = _clock_ticks()
    return Usage(
        start_time=_boot_time() + int(fields[19]) / ticks,
        cpu_seconds=(int(fields[11]) + int(fields[12])) / ticks,
        resident_bytes=int(fields[21]) * _page_size(),
    )


def start_time(pid: int) -> float | None:
    found = usage(pid)
    return None if found is None else found.start_time
