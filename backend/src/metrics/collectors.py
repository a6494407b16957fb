"""What the metrics process reads at scrape time, next to the workers' files.

- Workers: which uvicorn workers are live (each wrote its start time into a `liveall` gauge
  file named by its PID), their memory and CPU from /proc, and the bookkeeping for the dead:
  prometheus_client's mark_process_dead() drops a dead worker's live gauges (its queue depth,
  its start time) while its counters and histograms stay in the sums.
- Documents: the documents per collection, from the database, at most once per `ttl_s`
  whoever scrapes and however often (one GROUP BY over the documents' collection ids).
- Release: the release and slot this container serves (NICA_RELEASE, NICA_SLOT), and whether
  the backend says it is ready (its /readyz, asked at most once per `ttl_s`).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import mark_process_dead
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from src.database.session import create_engine_from_settings, error_reason
from src.metrics import procfs
from src.settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")
# prometheus_client's function, typed: removes the live-mode gauge files of a dead process.
_mark_dead: Callable[[int, str], None] = mark_process_dead

# prometheus_client's file names: <type>[_<mode>]_<pid>.db; a live worker's start-time gauge
# is gauge_liveall_<pid>.db, each live-mode gauge of a process gauge_live<mode>_<pid>.db.
LIVE_GAUGE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")
WORKER_FILE = re.compile(r"^gauge_liveall_(\d+)\.db$")
MAX_COLLECTIONS = 100  # the largest; any others are summed into OTHERS
OTHERS = "(others)"
DOCUMENTS_SQL = text(
    "SELECT c.name, count(d.id) FROM collections AS c "
    "LEFT JOIN documents AS d ON d.collection_id = c.id GROUP BY c.name"
)
STATEMENT_TIMEOUT_MS = 2000
READYZ_TIMEOUT_S = 2.0


class Workers:
    """The live workers of one PROMETHEUS_MULTIPROC_DIR, their memory and CPU."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def sweep(self) -> list[int]:
        """Mark the processes that left live gauges and are gone as dead; the live workers'
        PIDs. Call before reading the files (the scrape, the snapshots do)."""
        with self._lock:
            names = [entry.name for entry in self._path.iterdir()]
            pids = {int(m[1]) for name in names if (m := LIVE_GAUGE_FILE.match(name))}
            for pid in pids:
                if procfs.usage(pid) is None:  # gone, or a zombie its parent has not reaped
                    _mark_dead(pid, str(self._path))
            workers = {int(m[1]) for name in names if (m := WORKER_FILE.match(name))}
            return sorted(pid for pid in workers if procfs.usage(pid) is not None)

    def collect(self) -> Iterator[Metric]:
        memory = GaugeMetricFamily(
            "process_resident_memory_bytes",
            "Resident memory of each live uvicorn worker, by PID.",
            labels=["pid"],
        )
        cpu = CounterMetricFamily(
            "process_cpu_seconds",
            "CPU time (user + system) of each live uvicorn worker, by PID.",
            labels=["pid"],
        )
        for pid in self.sweep():
            usage = procfs.usage(pid)
            if usage is not None:
                memory.add_metric([str(pid)], usage.resident_bytes)
                cpu.add_metric([str(pid)], usage.cpu_seconds)
        yield memory
        yield cpu


@dataclass
class _Cached(Generic[T]):
    value: T
    at: float


class Documents:
    """nica_documents{collection}: read from the database at most once per `ttl_s`."""

    def __init__(
        self,
        settings: Settings,
        ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._engine: Engine | None = None  # made on first use
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: _Cached[dict[str, int] | None] | None = None
        self.reads = 0  # database reads so far (the tests count them)

    def counts(self) -> dict[str, int] | None:
        """Documents by collection (the largest MAX_COLLECTIONS, the rest as OTHERS); None
        while the database cannot be read."""
        with self._lock:
            now = self._clock()
            if self._cached is None or now - self._cached.at >= self._ttl_s:
                self._cached = _Cached(self._read(), now)
            return self._cached.value

    def _read(self) -> dict[str, int] | None:
        self.reads += 1
        if self._engine is None:
            self._engine = create_engine_from_settings(self._settings, connect_timeout=2)
        try:
            with self._engine.connect() as connection:
                connection.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
                result = connection.execute(DOCUMENTS_SQL)
                rows = [(str(name), int(count)) for name, count in result]
        except SQLAlchemyError as error:
            reason = error_reason(error, self._settings)
            logger.warning("metrics: cannot count the documents: %s", reason)
            return None
        rows.sort(key=lambda row: (-row[1], row[0]))
        counts = dict(rows[:MAX_COLLECTIONS])
        if len(rows) > MAX_COLLECTIONS:
            counts[OTHERS] = sum(count for _, count in rows[MAX_COLLECTIONS:])
        return counts

    def collect(self) -> Iterator[Metric]:
        counts = self.counts()
        if counts is None:
            return
        family = GaugeMetricFamily(
            "nica_documents",
            "Documents stored per collection (read from the database at most once a minute).",
            labels=["collection"],
        )
        for name, count in counts.items():
            family.add_metric([name], count)
        yield family


class Release:
    """nica_release_info{release, slot} and nica_ready (the backend's /readyz: 1 on 200)."""

    def __init__(
        self,
        release: str,
        slot: str,
        readyz_url: str,
        ttl_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.release = release or "unknown"
        self.slot = slot or "unknown"
        self._url = readyz_url
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: _Cached[bool] | None = None

    def ready(self) -> bool:
        with self._lock:
            now = self._clock()
            if self._cached is None or now - self._cached.at >= self._ttl_s:
                self._cached = _Cached(_answers_ready(self._url), now)
            return self._cached.value

    def collect(self) -> Iterator[Metric]:
        yield InfoMetricFamily(
            "nica_release",
            "The release and blue/green slot this backend serves (NICA_RELEASE, NICA_SLOT).",
            value={"release": self.release, "slot": self.slot},
        )
        yield GaugeMetricFamily(
            "nica_ready",
            "1 while the backend's /readyz answers 200 (database, schema, models, warm-up), "
            "else 0.",
            value=1 if self.ready() else 0,
        )


def _answers_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=READYZ_TIMEOUT_S) as answer:  # noqa: S310
            json.load(answer)
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False  # 503 (HTTPError), refused, timed out, or not JSON
