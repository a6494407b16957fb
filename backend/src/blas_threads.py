"""How the CPUs a process may use are split: concurrent forward passes, each on one BLAS thread
(the NumPy BERT) or one ONNX Runtime intra-op thread (src/embeddings/onnx_bert.py).

The rule (docs/api.md, "Embeddings under load"): each uvicorn worker gets the container's CPU limit
(cgroup v2 `cpu.max`, else the CPUs this process may run on) divided by the workers
(UVICORN_WORKERS), and runs that many forward passes at once (the app's encode limiter), each
on one BLAS thread. Not one pass on that many BLAS threads: OpenBLAS's threads meet at a
barrier after every small matrix product, so when anything else wants the CPU (the proxy,
PostgreSQL, a client on the same host) one descheduled thread stalls the pass; measured on a
busy 2-CPU host, one sentence took 250 ms on 2 BLAS threads against 15-30 ms on one, and two
passes of 8 on one thread each gave 76-90 sentences/s against 13-14 for one pass of 16 on two.
OpenBLAS would otherwise also start one thread per CPU of the *host*.

`configure()` sets OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS to 1 where they
are unset; it must run before NumPy is first imported (src.main calls it first). Set
OPENBLAS_NUM_THREADS to give each pass more threads: `forward_passes()` then divides the
worker's CPUs by it, and `threads_per_pass()` gives ONNX Runtime's sessions as many intra-op
threads. Either way a worker's passes together use its CPUs: the CPU limit divided by the
uvicorn workers. Measured for ONNX Runtime on the busy 2-core build machine, one process:
two passes on one intra-op thread each gave 500 sentences/s at batch 1 and 300 at batch 16,
one pass on two threads 390 and 240 (without spinning; 290 and 140 with it).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, MutableMapping
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


def cpus_per_worker(cpus: int, workers: str | None) -> int:
    count = int(workers) if workers and workers.isdigit() and int(workers) > 0 else 1
    return max(1, cpus // count)


def configure(environ: MutableMapping[str, str] | None = None) -> int:
    """Set the BLAS thread variables that are unset (to 1); returns OPENBLAS_NUM_THREADS."""
    env = os.environ if environ is None else environ
    for variable in VARIABLES:
        env.setdefault(variable, "1")
    return _threads(env)


def forward_passes(environ: Mapping[str, str] | None = None, cpu_max: Path = CPU_MAX) -> int:
    """How many forward passes a worker runs at once: its CPUs over each pass's BLAS threads."""
    env = os.environ if environ is None else environ
    cpus = cpus_per_worker(cpu_limit(cpu_max), env.get("UVICORN_WORKERS"))
    return max(1, cpus // _threads(env))


def threads_per_pass(environ: Mapping[str, str] | None = None) -> int:
    """Threads of one forward pass: OPENBLAS_NUM_THREADS (1 once configure() has run)."""
    return _threads(os.environ if environ is None else environ)


def _threads(env: Mapping[str, str]) -> int:
    value = env.get(VARIABLES[0], "1")
    return int(value) if value.isdigit() and int(value) > 0 else 1
