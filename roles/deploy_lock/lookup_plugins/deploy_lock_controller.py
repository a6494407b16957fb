"""This run's identity on the controller, and whether a lock holder from here still runs.

Lookups run on the controller, so this is where the deploy lock learns which
ansible-playbook process it belongs to and whether another one is still alive.

Which process is "the run": in ansible-core 2.19 a task's arguments, conditions and
`until` are templated in a worker process, a `multiprocessing` child forked by the
ansible-playbook process (ansible/utils/multiprocessing.py: a 'fork' context;
ansible/executor/process/worker.py: WorkerProcess). So
`multiprocessing.parent_process()` is the ansible-playbook process there, and None
where a lookup is templated in the ansible-playbook process itself (then it is this
process). os.getppid() would be the same in a worker but silently wrong in the main
process, and the worker calls setsid(), so its process group does not say it either.
tests/roles/test_deploy_lock_controller.py runs a real ansible-playbook and checks it.

A PID alone can be reused, so the lock records the process's start time too (field 22
of /proc/PID/stat, clock ticks since boot), with the boot id and the PID namespace:
the same PID, start time, boot and namespace is the same process. On a controller
without /proc (macOS), none is recorded and only the lease applies.
"""

from __future__ import annotations

import multiprocessing
import os
import pwd
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: deploy_lock_controller
author: nica
short_description: The deploy lock's view of the controller (roles/deploy_lock)
description:
  - C(lookup('deploy_lock_controller', 'run')) is this run - the ansible-playbook process
    on this controller - as the lock records it (id, controller_user, controller_host,
    pid, pid_start, boot_id, pidns, started).
  - C(lookup('deploy_lock_controller', 'holder', holder=RECORD)) says whether the run in
    a lock record still exists (state alive, gone or unknown, with a reason). It can only
    tell for runs from this controller; for others the state is unknown (the lease decides).
options:
  _terms:
    description: C(run) or C(holder).
    required: true
  holder:
    description: The lock record to judge (C(holder) only); empty means the lock is free.
    type: dict
"""

RETURN = r"""
_raw:
  description: One dict, the run or the verdict.
  type: dict
"""

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def ansible_playbook_pid() -> int:
    """The ansible-playbook process of this run (see the module docstring)."""
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None and parent.pid is not None else os.getpid()


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def boot_id() -> str:
    return _read("/proc/sys/kernel/random/boot_id")


def pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def started_at(start_ticks: int) -> str:
    """A start time in clock ticks since boot as UTC ISO."""
    boot = next(
        (
            int(line.split()[1])
            for line in _read("/proc/stat").splitlines()
            if line.startswith("btime ")
        ),
        0,
    )
    when = boot + start_ticks / os.sysconf("SC_CLK_TCK")
    return datetime.fromtimestamp(when, UTC).strftime(ISO_FORMAT)


def operator() -> str:
    """Who runs ansible-playbook: the sudo caller when run through sudo."""
    login = pwd.getpwuid(os.getuid()).pw_name
    return os.environ.get("SUDO_USER") or login


def this_run(pid: int | None = None) -> dict[str, Any]:
    """The lock's record of a run of ansible-playbook on this controller."""
    pid = ansible_playbook_pid() if pid is None else pid
    stat = proc_stat(pid)
    start = stat[1] if stat else None
    host = socket.gethostname()
    boot = boot_id()
    return {
        "id": f"{host}:{pid}:{start if start is not None else '-'}:{boot[:8] or '-'}",
        "controller_user": operator(),
        "controller_host": host,
        "pid": pid,
        "pid_start": start,
        "boot_id": boot,
        "pidns": pid_namespace(),
        "started": started_at(start) if start is not None else "",
    }


def holder_state(holder: Mapping[str, Any] | None, me: Mapping[str, Any]) -> dict[str, Any]:
    """Whether the run in a lock record still exists, as far as this controller can tell."""
    if not holder:
        return {"id": "", "state": "free", "reason": "the lock is free"}
    ident, pid, host = holder.get("id", ""), holder.get("pid"), holder.get("controller_host")
    if ident == me.get("id"):
        return {"id": ident, "state": "alive", "reason": "it is this run"}
    here = all(
        holder.get(key) and holder.get(key) == me.get(key)
        for key in ("controller_host", "boot_id", "pidns")
    )
    if not here or holder.get("pid_start") is None or not isinstance(pid, int):
        where = (
            f"held from {host} before a reboot, or from another machine of that name"
            if host == me.get("controller_host")
            else f"held from another controller ({host})"
        )
        return {"id": ident, "state": "unknown", "reason": where}
    stat = proc_stat(pid)
    if stat is None:
        return {"id": ident, "state": "gone", "reason": f"pid {pid} no longer runs on {host}"}
    if stat[0] in ("Z", "X"):
        return {"id": ident, "state": "gone", "reason": f"pid {pid} on {host} has exited"}
    if stat[1] != holder.get("pid_start"):
        return {
            "id": ident,
            "state": "gone",
            "reason": f"pid {pid} on {host} is another process now",
        }
    return {"id": ident, "state": "alive", "reason": f"pid {pid} still runs on {host}"}


class LookupModule(LookupBase):  # type: ignore[misc]  # LookupBase is untyped
    def run(
        self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Any]:
        what = terms[0] if terms else ""
        if what == "run":
            return [this_run()]
        if what == "holder":
            return [holder_state(kwargs.get("holder"), this_run())]
        raise AnsibleError(
            f"lookup('deploy_lock_controller', ...) takes 'run' or 'holder'; got {what!r}"
        )
