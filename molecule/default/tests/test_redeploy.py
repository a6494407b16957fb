"""Redeploys and rollbacks under a steady client (testing/load/steady_client.py), each of
which must drop no request:
1. a configuration change (a new stack.env: a new release, cut over blue/green), its run
   killed (kill -9 of its process group) while the old slot drains, after the switch and
   the record: both slots then run, status.yml fails naming the one that does not serve,
   and the next deploy.yml converges to only the serving slot;
2. a release that never becomes ready (uvicorn refuses its log level): the proxy never
   switches, the serving slot is untouched, the deploy fails with its logs;
3. playbooks/rollback.yml back to the release before the change, with one request's body
   still arriving at the switch and into the drain (it must complete), then status.yml;
4. a code change: the next release (testing/next_release/0004, a backward compatible
   migration), a backup taken first; an orphaned `nica-prepare` container, as an
   interrupted run leaves, removed first;
5. the release after it (0005, not backward compatible) without the opt-in: refused;
6. playbooks/rollback.yml back across the 0004 migration;
7. playbooks/backup.yml (under the deploy lock), then restore.yml without a backup named
   (refused), then with the one taken before 0004, the oldest, and backend_keep_backups=1:
   the database back at 0003, health-checked, and the backup it read still there.
The same runs rotate the read API key (docs/security.md, "API keys"): the configuration
change adds a new read key beside the old one (the client sends the old one), the code
change removes the old one (the client sends the new one); both rollbacks serve the keys
deployed last, as the file they read is the host's one secret file."""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from typing import Any

import pytest
from runs import (
    DEPLOY,
    Run,
    ansible_playbook,
    ansible_playbook_killed_at,
    http,
    inspect,
    playbook,
    record,
    serving,
    sh,
    slow_upload,
    steady_client,
    vars_file,
)

LOADED = ["config-change", "never-ready", "rollback", "code-change", "rollback-migration"]
SCHEMA = (
    "docker exec nica-postgres-1 psql -h /var/run/postgresql -U app -d app -At"
    " -c 'SELECT version_num FROM alembic_version'"
)
MARK = {"backend_extra_env": {"NICA_REDEPLOY_MARK": "config-change"}}
NEVER_READY = {
    "backend_extra_env": {"NICA_REDEPLOY_MARK": "config-change", "UVICORN_LOG_LEVEL": "loudest"}
}


def env_sha256(host: Any, release: str) -> str:
    """The checksum of a release's stack.env ('' when it has none)."""
    file = host.file(f"/opt/nica/releases/{release}/stack.env")
    return str(file.sha256sum) if file.exists else ""


def running_slots(host: Any) -> list[str]:
    names = sh(host, "docker ps --format '{{.Names}}' --filter name=nica-backend-").split()
    return sorted(name.split("-")[2] for name in names)


def under_load(
    host: Any,
    case: str,
    *args: str,
    killed_at: str = "",
    key: str | None = "",
    upload: bool = False,
) -> dict[str, Any]:
    """Run one operator command while the steady client sends requests (with `key`: the
    inventory's read key by default); what it did. With killed_at, the command is killed
    when it starts that task, then status.yml and the same command run to their end (the
    client keeps going through all three). With upload, a slow upload (runs.slow_upload)
    is on its way across the switch too."""
    before = record(host)
    env_before = env_sha256(host, before["release"])
    extra: dict[str, Any] = {}
    uploading = slow_upload(host, case) if upload else contextlib.nullcontext({})
    began = time.time()
    with uploading as uploaded, steady_client(host, case, key=key) as client:
        if killed_at:
            extra["killed"] = ansible_playbook_killed_at(
                f"redeploy-{case}-killed", killed_at, *args
            )
            extra["after_kill"] = {"record": record(host), "running": running_slots(host)}
            extra["status_after_kill"] = ansible_playbook(
                f"redeploy-{case}-status", playbook("status")
            )
        run = ansible_playbook(f"redeploy-{case}", *args)
        extra["running"] = running_slots(host)
    if upload:
        extra["upload"] = uploaded
    extra["window"] = [began, time.time()]
    container = inspect(host, serving(host))
    return {
        **extra,
        "run": run,
        "before": before,
        "after": record(host),
        "client": client,
        "serving_env_sha256": [env_before, env_sha256(host, before["release"])],
        "serving": {
            "image": container["Config"]["Image"],
            "env_names": [entry.split("=", 1)[0] for entry in container["Config"]["Env"]],
        },
    }


def backups(host: Any) -> list[str]:
    return sorted(sh(host, "ls /opt/nica/backups").split())


MODELS = "http://127.0.0.1:8000/v1/models"


def key_answers(host: Any, keys: dict[str, str]) -> dict[str, int]:
    """What GET /v1/models answers each named key (200, 401)."""
    return {name: http(host, MODELS, key=key)[0] for name, key in keys.items()}


@pytest.fixture(scope="module")
def story(
    host: Any,
    next_releases,
    local_vars,
    api_keys: dict[str, str],
    rotated_api_key: str,
    prometheus,
) -> dict[str, Any]:
    done: dict[str, Any] = {}
    # The rotation of the read key: the inventory's keys plus a new read key, then without
    # the old one; from a vars file, as from an operator's vault.
    old_keys = local_vars["backend_api_keys"]
    new_key = {"name": "rotated-reader", "scope": "read", "key": rotated_api_key}
    both_keys = vars_file("redeploy-keys-both", {"backend_api_keys": [*old_keys, new_key]})
    rotated_keys = vars_file(
        "redeploy-keys-rotated",
        {"backend_api_keys": [k for k in old_keys if k["scope"] != "read"] + [new_key]},
    )
    keys = {"old": api_keys["read"], "new": rotated_api_key}
    done["config-change"] = under_load(
        host,
        "config-change",
        "-e",
        json.dumps(MARK),
        "-e",
        both_keys,
        DEPLOY,
        killed_at="Let the old slot finish the requests it is serving",
        key=keys["old"],
    )
    done["keys-after-adding"] = key_answers(host, keys)
    unready_before = inspect(host, serving(host))
    done["never-ready"] = under_load(
        host,
        "never-ready",
        "-e",
        json.dumps(NEVER_READY),
        "-e",
        both_keys,
        "-e",
        "backend_wait_timeout=20",
        DEPLOY,
    )
    unready_after = inspect(host, serving(host))
    done["never-ready-serving"] = [
        [c["Id"], c["State"]["StartedAt"]] for c in (unready_before, unready_after)
    ]
    done["rollback"] = under_load(
        host, "rollback", playbook("rollback"), key=keys["old"], upload=True
    )
    done["keys-after-rollback"] = key_answers(host, keys)
    done["status-after-rollback"] = ansible_playbook("status-after-rollback", playbook("status"))
    # What a run killed during `prepare` leaves behind: a one-shot container holding the name.
    done["orphan"] = sh(
        host, "docker run --detach --name nica-prepare nica-test/python:3.11-slim sleep 600"
    ).strip()
    done["code-change"] = under_load(
        host,
        "code-change",
        "-e",
        f"backend_project_dir={next_releases['compatible']}",
        "-e",
        rotated_keys,
        DEPLOY,
        key=keys["new"],
    )
    done["keys-after-removing"] = key_answers(host, keys)
    done["incompatible"] = ansible_playbook(
        "redeploy-incompatible",
        "-e",
        f"backend_project_dir={next_releases['incompatible']}",
        "-e",
        rotated_keys,
        DEPLOY,
    )
    done["after-incompatible"] = record(host)
    done["rollback-migration"] = under_load(
        host, "rollback-migration", playbook("rollback"), key=keys["new"]
    )
    done["keys-after-rollback-migration"] = key_answers(host, keys)
    done["schema_after_rollback"] = sh(host, SCHEMA).strip()
    done["backup"] = ansible_playbook("backup", playbook("backup"))
    done["backups"] = backups(host)
    done["restore-unnamed"] = ansible_playbook("restore-unnamed", playbook("restore"))
    # The oldest backup, and a prune that keeps one: the restore's own before-restore dump
    # must still leave it in place for pg_restore.
    before_0004 = next(name for name in done["backups"] if name.endswith("-0003-to-0004.dump"))
    done["restored"] = before_0004
    done["restore"] = ansible_playbook(
        "restore-before-0004",
        "-e",
        "backend_keep_backups=1",
        "-e",
        f"backend_restore_backup={before_0004}",
        playbook("restore"),
    )
    done["backups_after_restore"] = sorted(sh(host, "ls -a /opt/nica/backups").split())
    done["schema_after_restore"] = sh(host, SCHEMA).strip()
    done["readyz_after_restore"], _ = http(host, "http://127.0.0.1:8000/readyz")
    done["audit"] = [
        json.loads(line) for line in sh(host, "cat /opt/nica/state/audit.jsonl").splitlines()
    ]
    return done


@pytest.fixture(params=LOADED)
def loaded(request: pytest.FixtureRequest, story: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return request.param, story[request.param]


def test_the_client_sent_requests_throughout(loaded):
    name, case = loaded
    client = case["client"]
    assert client["sent"] >= 100, f"{name}: the steady client sent only {client['sent']} requests"
    assert client["stopped_by"] == "stop file", (
        f"{name}: the client ran out of budget first: {client}"
    )


def test_no_request_failed(loaded):
    name, case = loaded
    client = case["client"]
    assert client["failed"] == 0, (
        f"{name}: {client['failed']} of {client['sent']} requests failed: {client['failures']}"
    )


def test_no_stretch_without_a_success(loaded):
    name, case = loaded
    gap = case["client"]["longest_gap_s"]
    # Zero failures is the claim; this catches a stall that only slows requests down
    # (the old stop-then-start swap left 4.9 s without an answer).
    assert gap < 5.0, f"{name}: {gap} s passed without a successful response"


def test_a_request_whose_body_was_arriving_at_the_switch_completed(story):
    # The proxy's old worker forwards it to the old slot once its body is complete (a
    # second into the drain): the cut-over keeps that slot running until the old workers
    # are done. Without the drain the old slot stops while the body still arrives (the
    # upload sends the rest then), and the request fails.
    upload = story["rollback"]["upload"]
    assert upload.get("switched"), f"the proxy did not switch during the upload: {upload}"
    assert not upload.get("old_slot_stopped_first"), (
        f"the old slot stopped while a request it was to serve was still arriving: {upload}"
    )
    assert upload.get("status") == 200 and upload.get("right_answer"), (
        f"the request in flight at the switch failed: {upload}"
    )


def slot_series(prometheus, query: str, window: list[float]) -> list[tuple[float, float]]:
    """(time, value) of one series over a window (and 3 s after), every second."""
    result = prometheus.api("query_range", query=query, start=window[0], end=window[1] + 3, step=1)
    assert len(result) <= 1, result
    return [(float(t), float(v)) for t, v in result[0]["values"]] if result else []


def test_prometheus_saw_the_traffic_move_from_one_slot_to_the_other(story, prometheus):
    # What a dashboard shows of a cut-over: the real Prometheus scraped each slot through
    # the host's metrics port; the rollback's requests moved from one slot's series to the
    # other's, and neither slot answered a 5xx.
    case = story["rollback"]
    old, new = case["before"]["slot"], case["after"]["slot"]
    assert old != new, case["after"]
    served = {
        slot: slot_series(
            prometheus, f'sum(nica_http_requests_total{{slot="{slot}",route=~"/v1/.*"}})',
            case["window"],
        )
        for slot in (old, new)
    }  # fmt: skip
    increases = {
        slot: [t for (_, before), (t, after) in itertools.pairwise(points) if after > before]
        for slot, points in served.items()
    }
    assert increases[old], f"no request counted on the old slot {old}: {served[old]}"
    assert increases[new], f"no request counted on the new slot {new}: {served[new]}"
    # The old slot stops counting once the new one has taken over (the scrape is 1 s; the
    # slow upload ends on the old slot, a second into the drain).
    assert max(increases[old]) <= min(increases[new]) + 20, increases
    for slot in (old, new):
        errors = slot_series(
            prometheus,
            f'sum(nica_http_requests_total{{slot="{slot}",status=~"5.."}})',
            case["window"],
        )
        assert len({value for _, value in errors}) <= 1 and (
            slot == old or not any(value for _, value in errors)
        ), f"{slot} answered 5xx during the rollback: {errors}"


def test_a_run_killed_while_the_old_slot_drains_leaves_both_slots_running(story):
    case = story["config-change"]
    assert case["killed"].rc == -9, f"the run was not killed at the drain: {case['killed']}"
    after = case["after_kill"]
    assert after["record"]["release"] != case["before"]["release"], (
        "the killed run had not switched yet"
    )
    assert after["running"] == ["blue", "green"], (
        f"expected both slots running after the kill: {after}"
    )


def test_status_names_the_slot_that_runs_but_does_not_serve(story):
    case = story["config-change"]
    run: Run = case["status_after_kill"]
    old = case["before"]["slot"]
    assert run.rc != 0, "status.yml passed with the old slot still running"
    assert f"backend-{old} runs but does not serve" in " ".join(run.output.split()), str(run)


def test_the_next_deploy_converges_to_only_the_serving_slot(story):
    case = story["config-change"]
    assert case["run"].rc == 0, str(case["run"])
    assert case["running"] == [case["after"]["slot"]], (
        f"still running after the deploy: {case['running']}"
    )


def test_a_configuration_change_is_a_new_release_in_the_other_slot(story):
    case = story["config-change"]
    assert case["run"].rc == 0, str(case["run"])
    before, after = case["before"], case["after"]
    assert after["release"] != before["release"], "a changed setting did not make a new release"
    assert after["image"] == before["image"], "a setting change should not build a new image"
    assert after["slot"] != before["slot"], f"the new release should run in the idle slot: {after}"
    assert (after["previous_release"], after["previous_slot"]) == (
        before["release"],
        before["slot"],
    )


@pytest.mark.parametrize("name", ["config-change", "code-change"])
def test_the_serving_releases_files_never_change_under_it(story, name):
    before, after = story[name]["serving_env_sha256"]
    assert before, f"{name}: the serving release had no stack.env to compare"
    assert after == before, f"{name}: the serving release's stack.env was rewritten"


def test_a_release_that_never_becomes_ready_is_never_switched_to(story):
    case = story["never-ready"]
    run: Run = case["run"]
    assert run.rc != 0, "the deploy of a release that cannot start succeeded"
    assert case["after"] == case["before"], "the record changed although the release never served"
    assert "did not become ready" in run.output and "still sends every request to" in run.output, (
        str(run)
    )
    # its own log lines, as uvicorn printed them
    assert "loudest" in run.output, "the failure does not show the new container's log lines"


def test_the_serving_container_was_untouched_by_the_failed_release(story):
    before, after = story["never-ready-serving"]
    assert after == before, "the serving container was replaced or restarted"


def test_the_rollback_served_the_release_before_the_change(story):
    change, rollback = story["config-change"], story["rollback"]
    assert rollback["run"].rc == 0, str(rollback["run"])
    after = rollback["after"]
    assert after["release"] == change["before"]["release"]
    assert after["slot"] == change["before"]["slot"], "the rollback did not reuse the old slot"
    assert after["previous_release"] == change["after"]["release"], (
        "the rolled-back release should be kept"
    )
    assert rollback["serving"]["image"] == change["before"]["image"]


def test_status_after_the_rollback_reports_the_previous_release_ready(story):
    run: Run = story["status-after-rollback"]
    release = story["rollback"]["after"]
    assert run.rc == 0, f"status.yml failed after the rollback: {run}"
    text = " ".join(run.output.split())
    assert f"release: {release['release']} ({release['image']})" in text, str(run)
    assert "readyz: 200" in text and "record: matches what runs" in text, str(run)


def test_each_release_runs_with_the_configuration_it_was_deployed_with(story):
    change, rollback = story["config-change"]["serving"], story["rollback"]["serving"]
    assert "NICA_REDEPLOY_MARK" in change["env_names"], (
        f"the new release runs without its setting: {change}"
    )
    assert "NICA_REDEPLOY_MARK" not in rollback["env_names"], (
        f"the rolled-back release runs with the newer release's setting: {rollback}"
    )


def test_a_code_change_with_a_compatible_migration_cut_over(story):
    case = story["code-change"]
    assert case["run"].rc == 0, str(case["run"])
    assert case["after"]["image"] != case["before"]["image"], "the next release built no new image"
    assert case["after"]["slot"] != case["before"]["slot"]


def test_the_orphaned_prepare_container_was_removed_and_the_deploy_converged(host, story):
    assert story["code-change"]["run"].rc == 0
    assert host.run(f"docker inspect {story['orphan']}").rc != 0, (
        "the orphaned prepare container is still there"
    )


def test_the_database_was_backed_up_before_the_migration(story):
    assert any(name.endswith("-0003-to-0004.dump") for name in story["backups"]), (
        f"no backup taken before migrating 0003 to 0004: {story['backups']}"
    )


def test_a_migration_that_is_not_backward_compatible_is_refused_without_the_opt_in(story):
    run: Run = story["incompatible"]
    assert run.rc != 0, "a release with a non-compatible migration was deployed without the opt-in"
    assert "migration 0005 is not backward compatible" in run.output, str(run)
    assert "backend_allow_incompatible_migrations" in run.output, (
        "the refusal does not name the opt-in"
    )
    assert story["after-incompatible"] == story["code-change"]["after"], (
        "the refused release changed what serves"
    )


def test_the_rollback_across_the_migration_serves_the_previous_release_on_the_migrated_schema(
    story,
):
    case = story["rollback-migration"]
    assert case["run"].rc == 0, str(case["run"])
    assert case["after"]["release"] == story["code-change"]["before"]["release"]
    assert story["schema_after_rollback"] == "0004", "a rollback must not migrate the database down"


def test_backup_yml_runs_under_the_deploy_lock_and_is_audited(story):
    assert story["backup"].rc == 0, str(story["backup"])
    assert any(name.endswith("-manual.dump") for name in story["backups"]), (
        f"playbooks/backup.yml left no backup: {story['backups']}"
    )
    assert any(e["action"] == "backup" and e["result"] == "ok" for e in story["audit"]), (
        "playbooks/backup.yml did not take the deploy lock (no `backup` entry in the audit log)"
    )


def test_restore_refuses_to_run_without_a_named_backup(story):
    run: Run = story["restore-unnamed"]
    assert run.rc != 0, "restore.yml ran without a backup named"
    assert "backend_restore_backup" in run.output, "the refusal does not say what to set"


def test_restore_puts_the_database_back_and_is_health_checked(story):
    assert story["restore"].rc == 0, str(story["restore"])
    assert story["schema_after_restore"] == "0003", "the restored database is not the one backed up"
    assert story["readyz_after_restore"] == 200


def test_a_restore_never_prunes_the_backup_it_reads(story):
    # restore.yml ran with backend_keep_backups=1 and the oldest backup: its before-restore
    # dump prunes the folder, and must leave the named backup for pg_restore.
    after = story["backups_after_restore"]
    assert story["restore"].rc == 0, str(story["restore"])
    assert story["restored"] in after, (
        f"the restore deleted the backup it was asked to restore: {after}"
    )
    assert any(name.endswith("-before-restore.dump") for name in after), after
    assert not [name for name in after if "partial" in name], (
        f"a dump's temp file was left: {after}"
    )


# The rotation of the read key, run by run (the client's 0 failures: test_no_request_failed).
def test_a_new_key_works_once_the_release_that_adds_it_serves(story):
    answers = story["keys-after-adding"]
    assert answers == {"old": 200, "new": 200}, (
        f"after the deploy that adds a key, both should be let in: {answers}"
    )


def test_a_rollback_keeps_the_keys_deployed_last(story):
    # The release rolled back to was deployed before the new key existed; it reads the
    # host's keys file as it is now.
    answers = story["keys-after-rollback"]
    assert answers == {"old": 200, "new": 200}, f"after the rollback: {answers}"


def test_a_removed_key_is_refused_once_the_release_without_it_serves(story):
    answers = story["keys-after-removing"]
    assert answers == {"old": 401, "new": 200}, (
        f"after the deploy that removes the old key, only the new one should be let in: {answers}"
    )


def test_a_rollback_does_not_bring_a_removed_key_back(story):
    answers = story["keys-after-rollback-migration"]
    assert answers == {"old": 401, "new": 200}, f"after the rollback: {answers}"
