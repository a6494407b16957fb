"""The on-call playbooks that read or free a fleet (issue 21, item 4):
1. a deploy lock left on the database host by a run of another controller (as a killed
   run leaves it), then status.yml: it passes, reports the database host's PostgreSQL,
   and shows that host's lock next to the backend hosts' reports;
2. playbooks/lock.yml --limit <the database host> -e deploy_lock_force_release=true: it
   shows the database host's lock, then releases it, audited there naming whose lock it
   was."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fleet import BACKENDS, DATABASE, audit
from runs import Run, ansible_playbook, playbook, sh

RECORD = "/opt/nica/state/deploy-lock.json"
# A run on another controller (a CI runner), as roles/deploy_lock records it.
FOREIGN = {
    "id": "ci-runner-7:4242:99:feedbeef",
    "controller_user": "ops",
    "controller_host": "ci-runner-7",
    "pid": 4242,
    "pid_start": 99,
    "boot_id": "feedbeef-0000-4000-8000-000000000000",
    "pidns": "pid:[4026531836]",
    "action": "deploy",
}
HOLDER = "deploy by ops@ci-runner-7 (pid 4242)"


@pytest.fixture(scope="module")
def story(hosts: dict[str, Any]) -> dict[str, Any]:
    database = hosts[DATABASE]
    now = sh(database, "date -u +%Y-%m-%dT%H:%M:%SZ").strip()
    lock = {**FOREIGN, "since": now, "heartbeat": now}
    sh(database, f"printf %s {json.dumps(json.dumps(lock))} > {RECORD} && chmod 0640 {RECORD}")
    done: dict[str, Any] = {"status": ansible_playbook("status", playbook("status"))}
    done["lock"] = ansible_playbook(
        "lock-force-database",
        *("--limit", DATABASE, "-e", "deploy_lock_force_release=true"),
        playbook("lock"),
    )
    done["record_left"] = database.file(RECORD).exists
    done["audit"] = audit(database)
    return done


def test_status_passes_and_reports_the_database_host(story):
    run: Run = story["status"]
    assert run.rc == 0, f"status.yml failed on a healthy fleet: {run}"
    text = " ".join(run.results("Report the database host's status").get(DATABASE, "").split())
    assert "postgres: running/healthy" in text, (
        f"no healthy PostgreSQL in {DATABASE}'s report: {text}"
    )
    assert "accepting connections" in text, f"pg_isready's answer missing: {text}"


def test_status_on_a_backend_host_points_to_the_database_host(story):
    reports = story["status"].results("Report the status")
    for host in BACKENDS:
        text = " ".join(reports.get(host, "").split())
        containers = text.split("containers:", 1)[-1].split("backups:", 1)[0]
        assert "backend-" in containers and "postgres" not in containers, (
            f"{host}'s containers should be its slots and proxy only: {containers}"
        )
        assert f"backups: on {DATABASE}" in text, f"{host}'s report: {text}"


def test_status_shows_the_database_hosts_lock(story):
    shown = " ".join(story["status"].results("Report the deploy lock").get(DATABASE, "").split())
    assert f"lock: {HOLDER}" in shown, f"status.yml did not show {DATABASE}'s lock: {shown}"


def test_lock_yml_shows_the_database_hosts_lock(story):
    run: Run = story["lock"]
    assert run.rc == 0, f"lock.yml --limit {DATABASE} failed: {run}"
    shown = " ".join(run.results("Report the deploy lock").get(DATABASE, "").split())
    assert re.search(rf"lock: {re.escape(HOLDER)} since \S+; last heartbeat", shown), (
        f"lock.yml did not show {DATABASE}'s lock: {run}"
    )


def test_lock_yml_force_releases_the_database_hosts_lock(story):
    run: Run = story["lock"]
    assert f"Released the deploy lock of {DATABASE}: {HOLDER}" in run.said(), str(run)
    assert not story["record_left"], f"{RECORD} is still on {DATABASE} after the forced release"
    last = story["audit"][-1] if story["audit"] else {}
    assert last.get("action") == "unlock" and HOLDER in last.get("detail", ""), (
        f"the forced release is not the last entry of {DATABASE}'s audit log: {last}"
    )
