"""The table at the end of a rollout (callback_plugins/rollout_table.py): printed also
when Ansible stops a serial play at its first failure and runs nothing after it, with
each host's release and state, the hosts not reached among them. Run for real in
ansible-playbook with the same play keywords as deploy.yml's backend play."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def report(release: str, state: str) -> dict[str, object]:
    return {
        "name": "Report",
        "ansible.builtin.set_fact": {
            "backend_rollout_report": {"release": release, "state": state}
        },
    }


def test_a_failed_rollout_ends_with_the_table_naming_each_host(tmp_path: Path) -> None:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {"backend": {"hosts": {"web-1": local, "web-2": local, "web-3": local}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    plays = [
        {
            "name": "Before",
            "hosts": "backend",
            "gather_facts": False,
            "tasks": [report("r1", "not reached")],
        },
        {
            "name": "Roll",
            "hosts": "backend",
            "gather_facts": False,
            "serial": [1, "50%"],
            "max_fail_percentage": 0,
            "tasks": [
                {
                    "name": "Fail on the second host",
                    "ansible.builtin.fail": {
                        "msg": "r2 did not become ready within 180 s\nlog lines"
                    },
                    "when": "inventory_hostname == 'web-2'",
                },
                report("r2", "rolled out"),
            ],
        },
        {
            "name": "Never reached",
            "hosts": "backend",
            "gather_facts": False,
            "tasks": [report("x", "x")],
        },
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(plays))
    env = {
        **os.environ,
        "ANSIBLE_CALLBACK_PLUGINS": str(REPO / "callback_plugins"),
        "ANSIBLE_NOCOLOR": "1",
    }
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(tmp_path / "hosts.yml"),
            "play.yml",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode != 0, "the rollout should have failed on web-2"
    table = run.stdout[run.stdout.find("ROLLOUT") :].splitlines()
    rows = {
        line.split()[0]: line.split(None, 2)[1:] for line in table[1:] if line.startswith("web-")
    }
    assert rows == {
        "web-1": ["r2", "rolled out"],
        "web-2": ["r1", "FAILED: r2 did not become ready within 180 s"],
        "web-3": ["r1", "not reached"],
    }, f"expected web-1 rolled out, web-2 failed on r1, web-3 not reached:\n{run.stdout[-1500:]}"
