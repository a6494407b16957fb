"""The fleet's checks (molecule verify: testinfra): two backend hosts sharing the database
host's PostgreSQL, rolled canary first, one image built once.

The operator's runs go over SSH as the deploy user, as production's do (runs.py, with the
scenario's inventory); the checks look into each host container with testinfra's docker
backend (`docker exec`: each host runs its own engine), and send HTTP from the hosts
themselves.

The modules run in STORIES order: first the day-2 stories, each a module whose fixture
runs what an operator would and whose tests assert on it right away; then the checks of
the fleet as those stories left it (the rest, alphabetically).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import testinfra

# The helpers every scenario's tests share: molecule/shared/runs.py (`from runs import ...`).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from fleet import BACKENDS, FLEET, image_id
from runs import REPO, fact_cache, next_release, record, stories_first

# The day-2 stories, in the order they run; every other module comes after them.
STORIES = [
    "test_canary",
    "test_dryrun",
    "test_rollout",
    "test_limited",
    "test_operations",
    "test_restore",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    stories_first(items, STORIES)


@pytest.fixture(scope="session")
def hosts() -> dict[str, Any]:
    """Each host of the fleet, reached with `docker exec` as root (a check, not a deploy)."""
    return {name: testinfra.get_host(f"docker://{name}") for name in FLEET}


@pytest.fixture(scope="session", autouse=True)
def converged(hosts: dict[str, Any]) -> dict[str, Any]:
    """Each backend host's record and release image ID as converge left them, before the
    first story; the nested runs' fact cache starts empty (the hosts are new)."""
    shutil.rmtree(fact_cache(), ignore_errors=True)
    records = {name: record(hosts[name]) for name in BACKENDS}
    return {
        "records": records,
        "images": {name: records[name]["image"] for name in BACKENDS},
        "ids": {name: image_id(hosts[name], records[name]["image"]) for name in BACKENDS},
    }


@pytest.fixture(scope="session")
def next_compatible() -> Path:
    """The next release (testing/next_release/0004, a backward compatible migration)."""
    return next_release(REPO / "build" / "next-releases-fleet" / "next-compatible", 1)
