"""Redeploys and a rollback under a steady client (side_effect_redeploy.yml): no request dropped."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import REPORTS, report

CASES = [
    "config-change",
    "never-ready",
    "rollback",
    "code-change",
    "rollback-migration",
]


@pytest.fixture(scope="module", params=CASES)
def case(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, report(f"redeploy-{request.param}.json")


def test_the_client_sent_requests_throughout(case):
    name, run = case
    client = run["client"]
    assert client["sent"] >= 100, f"{name}: the steady client sent only {client['sent']} requests"
    assert client["stopped_by"] == "stop file", (
        f"{name}: the client ran out of budget first: {client}"
    )


def test_no_request_failed(case):
    name, run = case
    client = run["client"]
    assert client["failed"] == 0, (
        f"{name}: {client['failed']} of {client['sent']} requests failed: {client['failures']}"
    )


def test_no_stretch_without_a_success(case):
    name, run = case
    gap = run["client"]["longest_gap_s"]
    # Zero failures is the claim; this catches a stall that only slows requests down
    # (the old stop-then-start swap left 4.9 s without an answer).
    assert gap < 5.0, f"{name}: {gap} s passed without a successful response"


def test_a_configuration_change_is_a_new_release_in_the_other_slot():
    run = report("redeploy-config-change.json")
    assert run["rc"] == 0, (REPORTS / "redeploy-config-change.log").read_text()[-3000:]
    before, after = run["before"], run["after"]
    assert after["release"] != before["release"], "a changed setting did not make a new release"
    assert after["image"] == before["image"], "a setting change should not build a new image"
    assert after["slot"] != before["slot"], f"the new release should run in the idle slot: {after}"
    assert (after["previous_release"], after["previous_slot"]) == (
        before["release"],
        before["slot"],
    )


@pytest.mark.parametrize("name", ["config-change", "code-change"])
def test_the_serving_releases_files_never_change_under_it(name):
    before, after = report(f"redeploy-{name}.json")["serving_env_sha256"]
    assert before, f"{name}: the serving release had no stack.env to compare"
    assert after == before, f"{name}: the serving release's stack.env was rewritten"


def test_a_release_that_never_becomes_ready_is_never_switched_to():
    run = report("redeploy-never-ready.json")
    log = (REPORTS / "redeploy-never-ready.log").read_text()
    assert run["rc"] != 0, "the deploy of a release that cannot start succeeded"
    assert run["after"] == run["before"], "the record changed although the release never served"
    assert "did not become ready" in log and "still sends every request to" in log, log[-3000:]
    # its own log lines, as uvicorn printed them
    assert "loudest" in log, "the failure does not show the new container's log lines"


def test_the_serving_container_was_untouched_by_the_failed_release():
    serving = report("redeploy-never-ready-serving.json")
    assert serving["after"] == serving["before"], "the serving container was replaced or restarted"


def test_the_rollback_served_the_release_before_the_change():
    change = report("redeploy-config-change.json")
    rollback = report("redeploy-rollback.json")
    assert rollback["rc"] == 0, (REPORTS / "redeploy-rollback.log").read_text()[-3000:]
    assert rollback["after"]["release"] == change["before"]["release"]
    assert rollback["after"]["slot"] == change["before"]["slot"], (
        "the rollback did not reuse the old slot"
    )


def test_each_release_runs_with_the_configuration_it_was_deployed_with():
    change = report("redeploy-config-change.json")["serving"]
    rollback = report("redeploy-rollback.json")["serving"]
    assert "NICA_REDEPLOY_MARK" in change["env_names"], (
        f"the new release runs without its setting: {change}"
    )
    assert "NICA_REDEPLOY_MARK" not in rollback["env_names"], (
        f"the rolled-back release runs with the newer release's setting: {rollback}"
    )


def log(name: str) -> str:
    return (REPORTS / name).read_text()


def test_a_code_change_with_a_compatible_migration_cut_over():
    run = report("redeploy-code-change.json")
    assert run["rc"] == 0, log("redeploy-code-change.log")[-3000:]
    assert run["after"]["image"] != run["before"]["image"], "the next release built no new image"
    assert run["after"]["slot"] != run["before"]["slot"]


def test_the_orphaned_prepare_container_was_removed_and_the_deploy_converged(host):
    orphan = report("redeploy-orphan.json")["id"]
    assert report("redeploy-code-change.json")["rc"] == 0
    assert host.run(f"docker inspect {orphan}").rc != 0, (
        "the orphaned prepare container is still there"
    )


def test_the_database_was_backed_up_before_the_migration():
    backups = report("redeploy-migration.json")["backups"]
    assert any(name.endswith("-0003-to-0004.dump") for name in backups), (
        f"no backup taken before migrating 0003 to 0004: {backups}"
    )


def test_a_migration_that_is_not_backward_compatible_is_refused_without_the_opt_in():
    run = report("redeploy-incompatible.json")
    text = log("redeploy-incompatible.log")
    assert run["rc"] != 0, (
        "a release with a non-compatible migration was deployed without the opt-in"
    )
    assert "migration 0005 is not backward compatible" in text, text[-3000:]
    assert "backend_allow_incompatible_migrations" in text, "the refusal does not name the opt-in"
    code_change = report("redeploy-code-change.json")
    assert run["after"] == code_change["after"], "the refused release changed what serves"


def test_the_rollback_across_the_migration_serves_the_previous_release_on_the_migrated_schema():
    code_change = report("redeploy-code-change.json")
    run = report("redeploy-rollback-migration.json")
    assert run["rc"] == 0, log("redeploy-rollback-migration.log")[-3000:]
    assert run["after"]["release"] == code_change["before"]["release"]
    assert report("redeploy-migration.json")["schema_after_rollback"] == "0004", (
        "a rollback must not migrate the database down"
    )


def test_restore_refuses_to_run_without_a_named_backup():
    restores = report("redeploy-migration.json")["restore_rc"]
    assert restores["unnamed"] != 0, "restore.yml ran without a backup named"
    assert "backend_restore_backup" in log("restore-unnamed.log"), (
        "the refusal does not say what to set"
    )


def test_restore_puts_the_database_back_and_is_health_checked():
    record = report("redeploy-migration.json")
    assert record["restore_rc"]["before-0004"] == 0, log("restore-before-0004.log")[-3000:]
    assert record["schema_after_restore"] == "0003", (
        "the restored database is not the one backed up"
    )
    assert record["readyz_after_restore"] == 200


def test_a_restore_never_prunes_the_backup_it_reads(host):
    # restore.yml ran with backend_keep_backups=1 and the oldest backup: its before-restore
    # dump prunes the folder, and must leave the named backup for pg_restore.
    record = report("redeploy-migration.json")
    restored = next(name for name in record["backups"] if name.endswith("-0003-to-0004.dump"))
    assert record["restore_rc"]["before-0004"] == 0, log("restore-before-0004.log")[-3000:]
    after = record["backups_after_restore"]
    assert restored in after, f"the restore deleted the backup it was asked to restore: {after}"
    assert any(name.endswith("-before-restore.dump") for name in after), after
    assert not [name for name in after if name.endswith(".partial")], after


def test_backup_yml_runs_under_the_deploy_lock_and_is_audited(host):
    record = report("redeploy-migration.json")
    assert any(name.endswith("-manual.dump") for name in record["backups"]), (
        f"playbooks/backup.yml left no backup: {record['backups']}"
    )
    lines = host.file("/opt/nica/state/audit.jsonl").content_string.splitlines()
    audit = [json.loads(line) for line in lines]
    assert any(e["action"] == "backup" and e["result"] == "ok" for e in audit), (
        "playbooks/backup.yml did not take the deploy lock (no `backup` entry in the audit log)"
    )
