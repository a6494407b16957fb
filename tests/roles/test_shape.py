"""deploy.yml's first check (roles/backend_common tasks_from: shape) tells the three inventory
shapes apart and refuses one that makes no sense, naming what to fix, before any host
is contacted. Run for real in ansible-playbook, against inventories of local hosts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
URL = "postgresql+psycopg://app@db.example.internal:5432/app"


def host(**variables: Any) -> dict[str, Any]:
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        **variables,
    }


def run_shape(tmp_path: Path, inventory: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """Run the shape check once against INVENTORY; the shape it named is printed last."""
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    playbook = tmp_path / "shape.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Check the shape",
                    "hosts": "all",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Check",
                            "ansible.builtin.include_role": {
                                "name": "backend_common",
                                "tasks_from": "shape",
                            },
                            "run_once": True,
                        },
                        {
                            "name": "Say",
                            "ansible.builtin.debug": {"msg": "SHAPE={{ backend_shape }}"},
                            "run_once": True,
                        },
                    ],
                }
            ]
        )
    )
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
    }
    command = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        str(tmp_path / "hosts.yml"),
    ]
    return subprocess.run(
        [*command, str(playbook)], capture_output=True, text=True, env=env, timeout=120, check=False
    )


ACCEPTED: dict[str, dict[str, Any]] = {
    "one-host": {"backend": {"hosts": {"web-1": host()}}},
    "fleet": {
        "backend": {"hosts": {"web-1": host(), "web-2": host()}},
        "database": {"hosts": {"db-1": host()}},
    },
    "external": {
        "backend": {
            "hosts": {"web-1": host(), "web-2": host()},
            "vars": {"backend_database_url": URL},
        }
    },
    "islands": {
        "backend": {
            "hosts": {"web-1": host(), "web-2": host()},
            "vars": {"backend_database_on_each_host": True},
        }
    },
}

# Each refused shape, with the words its one-line message must hold.
REFUSED: dict[str, tuple[dict[str, Any], list[str]]] = {
    "a fleet with no database": (
        {"backend": {"hosts": {"web-1": host(), "web-2": host()}}},
        ["2 backend hosts", "no shared database", "`database` group", "backend_database_url"],
    ),
    "a database group and an external URL": (
        {
            "backend": {
                "hosts": {"web-1": host(), "web-2": host()},
                "vars": {"backend_database_url": URL},
            },
            "database": {"hosts": {"db-1": host()}},
        },
        ["backend_database_url is set", "`database` group (db-1)", "choose one"],
    ),
    "two database hosts": (
        {
            "backend": {"hosts": {"web-1": host()}},
            "database": {"hosts": {"db-1": host(), "db-2": host()}},
        },
        ["`database` group holds 2 hosts (db-1, db-2)"],
    ),
    "a database group and no backend group": (
        {"database": {"hosts": {"db-1": host()}}},
        ["no `backend` group", "`database` group (db-1)"],
    ),
    "one host in both groups": (
        {"backend": {"hosts": {"web-1": host()}}, "database": {"hosts": {"web-1": host()}}},
        ["web-1 is in both `backend` and `database`"],
    ),
    "an external URL on some hosts only": (
        {"backend": {"hosts": {"web-1": host(backend_database_url=URL), "web-2": host()}}},
        ["backend_database_url is set for web-1 but not for web-2"],
    ),
    "islands and a database group": (
        {
            "backend": {
                "hosts": {"web-1": host(), "web-2": host()},
                "vars": {"backend_database_on_each_host": True},
            },
            "database": {"hosts": {"db-1": host()}},
        },
        ["backend_database_on_each_host is true", "choose one"],
    ),
    "a batch that is no count or percentage": (
        {"backend": {"hosts": {"web-1": host()}, "vars": {"backend_rollout_batches": [1, "half"]}}},
        ["backend_rollout_batches must be", '[1, "half"]'],
    ),
    "a failure budget over 100": (
        {
            "backend": {
                "hosts": {"web-1": host()},
                "vars": {"backend_rollout_failure_percentage": 150},
            }
        },
        ["backend_rollout_failure_percentage 0-100", "150"],
    ),
}


@pytest.mark.parametrize("shape", sorted(ACCEPTED))
def test_a_sensible_shape_is_accepted_and_named(tmp_path: Path, shape: str) -> None:
    run = run_shape(tmp_path, ACCEPTED[shape])
    assert run.returncode == 0, f"the {shape} shape was refused:\n{run.stdout[-1500:]}"
    assert f"SHAPE={shape}" in run.stdout, (
        f"expected the shape to be named {shape}:\n{run.stdout[-1500:]}"
    )


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_nonsensical_shape_is_refused_naming_what_to_fix(tmp_path: Path, case: str) -> None:
    inventory, words = REFUSED[case]
    run = run_shape(tmp_path, inventory)
    assert run.returncode != 0, f"{case} was accepted:\n{run.stdout[-1500:]}"
    missing = [w for w in words if w not in run.stdout]
    assert not missing, f"{case}: the failure does not say {missing}:\n{run.stdout[-2000:]}"
