"""The deploy lock's controller side (roles/deploy_lock/lookup_plugins/deploy_lock_controller.py).

Which process is the run, and whether a holder's process still exists, checked against
real processes and a real ansible-playbook run (ansible-core from .venv).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .loader import REPO, load

controller = load(
    "deploy_lock_controller", REPO / "roles/deploy_lock/lookup_plugins/deploy_lock_controller.py"
)

PLAYBOOK = """\
- name: Print the deploy lock's view of this run
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Identify this run from a task (a worker process)
      ansible.builtin.debug:
        msg: "{{ lookup('deploy_lock_controller', 'run') }}"
"""


@pytest.fixture()
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process of this controller that stands for a run holding a lock."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_run_is_the_ansible_playbook_process(tmp_path: Path) -> None:
    """What the lock relies on in ansible-core: a lookup in a task sees the run's process."""
    (tmp_path / "run.yml").write_text(PLAYBOOK)
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(tmp_path / "none.cfg"),
        "ANSIBLE_LOOKUP_PLUGINS": str(REPO / "roles/deploy_lock/lookup_plugins"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }
    playbook = Path(sys.executable).with_name("ansible-playbook")
    process = subprocess.Popen(
        [str(playbook), str(tmp_path / "run.yml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, f"ansible-playbook failed: {err.decode()[-500:]}"
    task = json.loads(out)["plays"][0]["tasks"][0]
    seen = task["hosts"]["localhost"]["msg"]
    assert seen["pid"] == process.pid, (
        f"the lookup named pid {seen['pid']}, but ansible-playbook ran as {process.pid}"
    )
    assert isinstance(seen["pid_start"], int), f"no start time recorded: {seen}"


def test_run_records_its_start_time_boot_and_namespace() -> None:
    me = controller.this_run()
    assert me["pid"] == os.getpid()
    assert me["pid_start"] == controller.proc_stat(os.getpid())[1]
    assert me["boot_id"] and me["pidns"].startswith("pid:["), me


def test_holder_whose_process_runs_is_alive(sleeper: subprocess.Popen[bytes]) -> None:
    holder = controller.this_run(pid=sleeper.pid)
    verdict = controller.holder_state(holder, controller.this_run())
    assert verdict["state"] == "alive", verdict
    assert verdict["id"] == holder["id"], "the verdict must name the record it judged"


def test_holder_killed_with_sigkill_is_gone(sleeper: subprocess.Popen[bytes]) -> None:
    holder = controller.this_run(pid=sleeper.pid)
    sleeper.send_signal(signal.SIGKILL)
    sleeper.wait()
    verdict = controller.holder_state(holder, controller.this_run())
    assert verdict["state"] == "gone", verdict
    assert verdict["reason"] == f"pid {sleeper.pid} no longer runs on {holder['controller_host']}"


def test_holder_killed_but_not_yet_reaped_is_gone(sleeper: subprocess.Popen[bytes]) -> None:
    holder = controller.this_run(pid=sleeper.pid)
    sleeper.send_signal(signal.SIGKILL)
    os.waitid(os.P_PID, sleeper.pid, os.WEXITED | os.WNOWAIT)  # a zombie until reaped
    verdict = controller.holder_state(holder, controller.this_run())
    assert verdict["state"] == "gone", f"a zombie counted as a live run: {verdict}"


def test_holder_whose_pid_was_reused_is_gone(sleeper: subprocess.Popen[bytes]) -> None:
    holder: dict[str, Any] = controller.this_run(pid=sleeper.pid)
    holder.update(pid_start=holder["pid_start"] - 1, id="an-earlier-process")
    verdict = controller.holder_state(holder, controller.this_run())
    assert verdict["state"] == "gone", verdict
    assert "is another process now" in verdict["reason"]


def test_holder_from_another_controller_is_left_to_the_lease(
    sleeper: subprocess.Popen[bytes],
) -> None:
    holder = {**controller.this_run(pid=sleeper.pid), "controller_host": "elsewhere", "id": "x"}
    verdict = controller.holder_state(holder, controller.this_run())
    assert verdict == {
        "id": "x",
        "state": "unknown",
        "reason": "held from another controller (elsewhere)",
    }


def test_this_run_is_alive_to_itself() -> None:
    me = controller.this_run()
    assert controller.holder_state(me, me)["state"] == "alive"


def test_free_lock_has_no_holder() -> None:
    assert controller.holder_state(None, controller.this_run())["state"] == "free"
