"""Readiness across uvicorn workers: ready only once every worker has loaded its models.

With UVICORN_WORKERS > 1, uvicorn's supervisor binds the port and every worker process accepts
connections from it, so /readyz is answered by whichever worker takes the connection, and each
worker loads the models on its own (in a thread, after it started serving). Without this, the
first worker to load would say "ready", the deploy would route traffic to the slot, and the
requests the other workers took would get a 503 "loading".

Each worker, once its models are loaded and it has warmed up (src.warmup), writes a file named
by its PID into MARKS (in the container's /tmp, a tmpfs: empty at every container start). A
worker with its models loaded
passes the `embeddings` check when the files of the other live processes whose parent is its
parent (the supervisor) number at least the other workers: a worker that died and was replaced
leaves a file that no sibling counts, and its replacement counts once it has loaded. uvicorn
does not share state between its workers, hence files; with one worker (no supervisor) nothing
is written or read.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from src.embeddings.registry import OK

# In the backend container, /tmp: a tmpfs that only its processes see (the compose file).
MARKS = Path(tempfile.gettempdir()) / "nica-workers-loaded"


def mark_loaded(marks: Path | None = None) -> None:
    """Note that this process has loaded every model."""
    marks = marks or MARKS
    marks.mkdir(mode=0o700, exist_ok=True)
    (marks / str(os.getpid())).touch()


def loaded_siblings(marks: Path | None = None) -> int:
    """Other live processes with this one's parent that noted they loaded."""
    try:
        names = [entry.name for entry in (marks or MARKS).iterdir()]
    except FileNotFoundError:
        return 0
    me, parent = os.getpid(), os.getppid()
    pids = [int(name) for name in names if name.isdigit()]
    return sum(1 for pid in pids if pid != me and _parent_of(pid) == parent)


def status(workers: int, marks: Path | None = None) -> str:
    """For a worker whose models are loaded: "ok" when `workers` is 1 or every other worker
    noted it loaded too, else how many have (this one included)."""
    if workers <= 1:
        return OK
    loaded = 1 + loaded_siblings(marks)
    if loaded >= workers:
        return OK
    return f"loaded in {loaded} of {workers} uvicorn workers (UVICORN_WORKERS)"


def _parent_of(pid: int) -> int | None:
    """The parent PID of a live process, from /proc/PID/stat; None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and ")", so split after the last ")".
    fields = stat.rpartition(")")[2].split()
    if len(fields) < 2 or fields[0] == "Z" or not fields[1].isdigit():
        return None  # a zombie has exited
    return int(fields[1])
