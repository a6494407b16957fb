"""How many threads BLAS may use: the container's CPU limit shared by the uvicorn workers.

The rule (README, "Embeddings under load"): one forward pass runs at a time per process (the
app's encode limiter), and BLAS spreads that pass over its threads, so a process should have as
many BLAS threads as the CPUs it may use: the container's limit (cgroup v2 `cpu.max`, else
the CPUs this process may run on) divided by the uvicorn workers (UVICORN_WORKERS). OpenBLAS
would otherwise start one thread per CPU of the *host*, so a 2-CPU container on a 16-core host
runs 16 threads on 2 CPUs' time.

`configure()` sets OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS where they are
unset; it must run before NumPy is first imported (src.main calls it first). Set any of them
to override the rule.
"""

from __future__ import annotations

import math
import os
from collections.abc import MutableMapping
from pathlib import Path

CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def cpu_limit(cpu_max: Path = CPU_MAX) -> int:
    """CPUs this process may use: the cgroup quota rounded up, at most the CPUs it may run on."""
    available = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text(encoding="ascii").split()[:2]
    except (OSError, ValueError):
        return available
    if quota == "max" or not (quota.isdigit() and period.isdigit()) or int(period) == 0:
        return available
    return max(1, min(available, math.ceil(int(quota) / int(period))))


def threads_per_worker(cpus: int, workers: str | None) -> int:
    count = int(workers) if workers and workers.isdigit() and int(workers) > 0 else 1
    return max(1, cpus // count)


def configure(
    environ: MutableMapping[str, str] | None = None, cpu_max: Path = CPU_MAX
) -> int:
    """Set the BLAS thread variables that are unset; returns OPENBLAS_NUM_THREADS then."""
    env = os.environ if environ is None else environ
    threads = threads_per_worker(cpu_limit(cpu_max), env.get("UVICORN_WORKERS"))
    for variable in VARIABLES:
        env.setdefault(variable, str(threads))
    value = env[VARIABLES[0]]
    return int(value) if value.isdigit() else threads
