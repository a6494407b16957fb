"""The BLAS thread rule: the container's CPU limit divided by the uvicorn workers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from src.blas_threads import configure, cpu_limit

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


def test_the_workers_share_the_limit(tmp_path: Path) -> None:
    env = {"UVICORN_WORKERS": "2"}
    configure(env, cpu_max(tmp_path, f"{200000 * HOST_CPUS} 100000\n"))
    assert env["OPENBLAS_NUM_THREADS"] == str(max(1, HOST_CPUS // 2)), env


def test_a_set_variable_is_kept(tmp_path: Path) -> None:
    env = {"OPENBLAS_NUM_THREADS": "7"}
    configure(env, cpu_max(tmp_path, "100000 100000\n"))
    assert (env["OPENBLAS_NUM_THREADS"], env["OMP_NUM_THREADS"]) == ("7", "1"), env
