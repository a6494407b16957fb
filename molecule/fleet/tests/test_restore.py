"""Backup and restore on a fleet: backup.yml dumps the shared database on the database
host; a document is stored after it, then restore.yml three times:
1. a backup that does not exist: refused before anything stops;
2. with --limit leaving a backend host out: refused (that host may still serve the shared
   database), and the stopped host serves again;
3. the backup itself: every backend host stops, the database host restores (backing the
   database up as it was first), every backend host serves again; the document is gone.
Every host's audit log ends with the restore."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fleet import BACKENDS, CANARY, DATABASE, FLEET, SECOND, audit, fingerprints, search, store
from runs import Run, ansible_playbook, playbook, ready_status, record, sh

QUERY = "harbour cranes written after the fleet's backup"


def backups(host: Any) -> list[str]:
    return sorted(sh(host, "ls /opt/nica/backups 2>/dev/null || true").split())


@pytest.fixture(scope="module")
def story(hosts: dict[str, Any]) -> dict[str, Any]:
    database = hosts[DATABASE]
    done: dict[str, Any] = {"backups_before": backups(database)}
    done["backup"] = ansible_playbook("backup", playbook("backup"))
    done["backups_after"] = backups(database)
    new = sorted(set(done["backups_after"]) - set(done["backups_before"]))
    title = f"fleet-after-backup-{uuid.uuid4().hex[:8]}"
    text = "A note about harbour cranes written after the fleet's backup, undone by the restore."
    done["after_backup"], done["stored"] = title, store(hosts[CANARY], title, text)
    done["found_before"] = search(hosts[SECOND], QUERY)
    done["slots"] = {name: record(hosts[name])["slot"] for name in BACKENDS}
    done["fingerprints"] = {"before": fingerprints(hosts)}
    cases = {
        "missing": ["-e", "backend_restore_backup=missing.dump"],
        "limited": [
            *("-e", f"backend_restore_backup={(new or ['none'])[0]}"),
            *("--limit", f"{DATABASE},{CANARY}"),
        ],
        "done": ["-e", f"backend_restore_backup={(new or ['none'])[0]}"],
    }
    for case, args in cases.items():
        done[case] = ansible_playbook(f"restore-{case}", *args, playbook("restore"))
        done["fingerprints"][case] = fingerprints(hosts)
    done["ready"] = {name: ready_status(hosts[name]) for name in BACKENDS}
    done["found_after"] = search(hosts[SECOND], QUERY)
    done["backups_restored"] = backups(database)
    done["audit"] = {name: audit(hosts[name]) for name in FLEET}
    return done


def test_backup_dumps_the_shared_database_on_the_database_host(story):
    assert story["backup"].rc == 0, f"backup.yml failed on the fleet: {story['backup']}"
    new = sorted(set(story["backups_after"]) - set(story["backups_before"]))
    assert len(new) == 1 and new[0].endswith("-manual.dump"), (
        f"expected one new manual dump on {DATABASE}, got {new}"
    )


def started_at(story: dict[str, Any], when: str, host: str) -> str:
    """`<status> <started at>` of the host's serving container after `when`."""
    fingerprint = story["fingerprints"][when][host]
    container = f"/nica-backend-{story['slots'][host]}-1 "
    line = next(line for line in fingerprint.splitlines() if line.startswith(container))
    return " ".join(line.split()[2:4])


def test_restore_of_a_missing_backup_stops_before_anything_changes(story):
    run: Run = story["missing"]
    assert run.rc != 0, "restore.yml of missing.dump succeeded"
    said = run.said()
    wanted = f"No backup missing.dump in /opt/nica/backups on {DATABASE}"
    assert wanted in said and "there are:" in said, str(run)
    assert story["fingerprints"]["missing"] == story["fingerprints"]["before"], (
        "a refused restore changed a host of the fleet"
    )


def test_restore_with_a_backend_host_left_out_restores_nothing_and_serves_again(story):
    run: Run = story["limited"]
    assert run.rc != 0, "restore.yml ran with a backend host that may still serve"
    assert f"Nothing restored: {SECOND}: not in this run" in run.said(), str(run)
    before, after = story["fingerprints"]["before"], story["fingerprints"]["limited"]
    assert after[SECOND] == before[SECOND] and after[DATABASE] == before[DATABASE], (
        "the refused restore touched the host left out or the database host"
    )
    was, now = started_at(story, "before", CANARY), started_at(story, "limited", CANARY)
    assert now.startswith("running ") and now != was, (
        f"{CANARY} should have stopped and served again, its serving container: {was} -> {now}"
    )


def test_restore_stops_every_backend_host_restores_then_serves_again(story):
    run: Run = story["done"]
    assert run.rc == 0, f"restore.yml failed on the fleet: {run}"
    for host in BACKENDS:
        was, now = started_at(story, "limited", host), started_at(story, "done", host)
        assert now.startswith("running ") and now != was, (
            f"{host}'s serving container should have stopped and started again: {was} -> {now}"
        )
        assert story["ready"][host] == 200, f"{host} is not ready after the restore"


def test_restore_put_the_database_back_to_the_backup(story):
    assert story["stored"] == 201, (
        f"storing the document after the backup answered {story['stored']}"
    )
    assert story["after_backup"] in story["found_before"], (
        f"the document stored after the backup was not found before the restore:"
        f" {story['found_before']}"
    )
    assert story["after_backup"] not in story["found_after"], (
        f"the document stored after the backup is still there after the restore:"
        f" {story['found_after']}"
    )
    assert any(name.endswith("-before-restore.dump") for name in story["backups_restored"]), (
        f"no backup of the database as it was before the restore on {DATABASE}: "
        f"{story['backups_restored']}"
    )


@pytest.mark.parametrize("host", FLEET)
def test_restore_is_in_every_hosts_audit_log(story, host):
    entries = story["audit"][host]
    last = entries[-1] if entries else {}
    assert (last.get("action"), last.get("result")) == ("restore", "ok"), (
        f"{host}'s last audit entry should be the restore, ok: {last}"
    )
