"""The CPU rule: a worker runs (CPU limit / uvicorn workers) forward passes at once, each
on one BLAS thread (src.blas_threads)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from src.blas_threads import configure, cpu_limit, forward_passes

HOST_CPUS = len(os.sched_getaffinity(0))


def cpu_max(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "cpu.max"
    path.write_text(content)
    return path


def test_a_cgroup_quota_sets_the_limit(tmp_path: Path) -> None:
    assert cpu_limit(cpu_max(tmp_path, "100000 100000\n")) == 1


def test_a_fractional_quota_rounds_up(tmp_path: Path) -> None:
    assert cpu_limit(cpu_max(tmp_path, "150000 100000\n")) == min(2, HOST_CPUS)


@pytest.mark.parametrize("content", ["max 100000\n", "garbage\n"])
def test_no_quota_means_the_cpus_the_process_may_use(tmp_path: Path, content: str) -> None:
    assert cpu_limit(cpu_max(tmp_path, content)) == HOST_CPUS


def test_no_cgroup_file_means_the_cpus_the_process_may_use(tmp_path: Path) -> None:
    assert cpu_limit(tmp_path / "missing") == HOST_CPUS


def test_blas_gets_one_thread_per_pass() -> None:
    env: dict[str, str] = {"UVICORN_WORKERS": "1"}
    assert configure(env) == 1
    assert [
        env[name] for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    ] == [
        "1",
        "1",
        "1",
    ], f"every BLAS library gets one thread per pass: {env}"


def test_a_worker_runs_one_pass_per_cpu_of_the_limit(tmp_path: Path) -> None:
    limit = cpu_max(tmp_path, f"{100000 * HOST_CPUS} 100000\n")
    assert forward_passes({"OPENBLAS_NUM_THREADS": "1"}, limit) == HOST_CPUS


def test_the_workers_share_the_limit(tmp_path: Path) -> None:
    env = {"UVICORN_WORKERS": "2", "OPENBLAS_NUM_THREADS": "1"}
    passes = forward_passes(env, cpu_max(tmp_path, f"{200000 * HOST_CPUS} 100000\n"))
    assert passes == max(1, HOST_CPUS // 2), f"{HOST_CPUS} CPUs over 2 workers, got {passes}"


def test_more_blas_threads_per_pass_mean_fewer_passes(tmp_path: Path) -> None:
    limit = cpu_max(tmp_path, f"{400000} 100000\n")  # 4 CPUs, or the host's if fewer
    passes = forward_passes({"OPENBLAS_NUM_THREADS": "2"}, limit)
    assert passes == max(1, min(4, HOST_CPUS) // 2), f"2 threads per pass, got {passes} passes"


def test_a_set_variable_is_kept() -> None:
    env = {"OPENBLAS_NUM_THREADS": "7"}
    assert configure(env) == 7
    assert (env["OPENBLAS_NUM_THREADS"], env["OMP_NUM_THREADS"]) == ("7", "1"), env
