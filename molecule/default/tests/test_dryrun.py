"""Dry runs and partial runs: `deploy.yml --check --diff` with a changed setting and with
new code runs to the end, says what it would roll out (and reports it as a change, as
check mode does), and changes nothing on the host; each tag alone succeeds and changes
nothing; status.yml passes on the healthy host and fails, saying why, when the record
names another slot than the proxy routes to, or when a slot runs that does not serve."""

from __future__ import annotations

import re
from typing import Any

import pytest
from runs import Run, ansible_playbook, deploy, playbook, record, sh

# Per tag: a task of its phase that must run, and tasks of other phases that must not.
PHASES = {
    "docker_engine": (
        "docker_engine : Check that the host runs a supported distribution",
        ["model_cache : Check the model cache key"],
    ),
    "model_cache": (
        "model_cache : Check the model cache key",
        ["docker_engine : Check that the host runs a supported distribution"],
    ),
    "backend_preflight": (
        "backend_common : Check the scalar settings",
        ["release : Plan the release and its cut-over", "model_cache : Check the model cache key"],
    ),
    "backend_image": (
        "release : Look for the release image",
        [
            "stack : Create the backend directories",
            "cutover : Check that the release's image is on the host",
        ],
    ),
    "backend_config": (
        "stack : Create the backend directories",
        [
            "release : Look for the release image",
            "cutover : Check that the release's image is on the host",
        ],
    ),
    "backend_rollout": (
        "cutover : Check that the release's image is on the host",
        ["stack : Create the backend directories", "release : Look for the release image"],
    ),
}
TAGS = [
    "docker_engine",
    "model_cache",
    "backend_preflight",
    "backend_image",
    "backend_config",
    "backend_rollout",
]
# Everything a run would change on the host, by checksum or id.
FINGERPRINT = (
    "cd /opt/nica && sha256sum state/release.json compose/.env compose/proxy/live/upstream.conf"
    " compose/docker-compose.yml && ls releases"
    " && docker ps -a --format '{{.Names}} {{.ID}} {{.Status}}'"
    " | sed -E 's/(Up|Exited \\([0-9]+\\)) .*/\\1/' | sort"
    " && docker image ls -q --no-trunc | sort"
)


def said(run: Run) -> str:
    """The run's output with its line wrapping undone (the yaml callback folds messages)."""
    return " ".join(run.output.replace("'", " ").split())


@pytest.fixture(scope="module")
def runs(host: Any, next_releases) -> dict[str, Any]:
    before = sh(host, FINGERPRINT)
    done: dict[str, Any] = {
        "check-setting": deploy(
            "dryrun-check-setting",
            "--check",
            "--diff",
            "-e",
            '{"backend_extra_env": {"NICA_DRY_RUN_MARK": "changed"}}',
        ),
        "check-code": deploy(
            "dryrun-check-code",
            "--check",
            "--diff",
            "-e",
            f"backend_project_dir={next_releases['compatible']}",
        ),
    }
    for tag in TAGS:
        done[f"tag-{tag}"] = deploy(f"dryrun-tag-{tag}", "--tags", tag)
    done["host_before"], done["host_after"] = before, sh(host, FINGERPRINT)
    done["status-ok"] = ansible_playbook("status-ok", playbook("status"))
    # What status.yml must catch: a record that names another slot than the proxy routes to.
    sh(host, "cp -p /opt/nica/state/release.json /root/release.json.saved")
    try:
        sh(
            host,
            'python3 -c \'import json; p = "/opt/nica/state/release.json"; r = json.load(open(p));'
            ' r["slot"] = {"blue": "green", "green": "blue"}[r["slot"]];'
            ' json.dump(r, open(p, "w"))\'',
        )
        done["status-differs"] = ansible_playbook("status-differs", playbook("status"))
    finally:
        sh(host, "mv /root/release.json.saved /opt/nica/state/release.json")
    # ... and a slot that runs but does not serve (a run killed while the old slot drained).
    idle = {"blue": "green", "green": "blue"}[record(host)["slot"]]
    sh(host, f"cd /opt/nica/compose && docker compose up --detach --no-deps backend-{idle}")
    try:
        done["status-idle-runs"] = ansible_playbook("status-idle-runs", playbook("status"))
        done["idle"] = idle
    finally:
        sh(host, f"cd /opt/nica/compose && docker compose stop backend-{idle}")
    return done


@pytest.mark.parametrize("name", ["check-setting", "check-code"])
def test_a_dry_run_runs_to_the_end_and_reports_what_it_would_change(runs, name):
    run: Run = runs[name]
    assert run.rc == 0, f"deploy.yml --check --diff ({name}): {run}"
    counters = run.recap()
    assert counters["failed"] == 0, str(run)
    # Operators and CI wrappers read `changed`: a dry run that would deploy says so there.
    assert counters["changed"] > 0, f"a dry run that would deploy reported changed=0: {run}"


def test_a_dry_run_of_a_setting_says_what_it_would_roll_out(runs):
    text = said(runs["check-setting"])
    assert "would prepare" in text and "cut the proxy over" in text, text[-3000:]
    assert "settings that change: NICA_DRY_RUN_MARK" in text, (
        "the dry run does not name the setting"
    )
    assert "NICA_DRY_RUN_MARK=changed" not in text, "the dry run printed a setting's value"


def test_a_dry_run_of_new_code_says_it_would_build_and_roll_out(runs):
    text = said(runs["check-code"])
    assert "would build nica-pro-backend:" in text, text[-3000:]
    assert "would prepare" in text


def test_the_dry_runs_and_tags_changed_nothing_on_the_host(runs):
    assert runs["host_after"] == runs["host_before"], "a dry run or a tag alone changed the host"


@pytest.mark.parametrize("tag", TAGS)
def test_each_tag_works_alone(runs, tag):
    run: Run = runs[f"tag-{tag}"]
    assert run.rc == 0, f"--tags {tag}: {run}"
    counters = run.recap()
    assert counters["changed"] == 0, (
        f"--tags {tag} changed {counters['changed']} things with nothing to change"
    )
    own, others = PHASES[tag]
    assert run.ran(own), f"--tags {tag} did not run its own phase ({own}): {run}"
    ran_others = [task for task in others if run.ran(task)]
    assert ran_others == [], f"--tags {tag} ran other phases too: {ran_others}"


def test_status_reports_what_runs_and_passes_on_a_healthy_host(runs):
    run: Run = runs["status-ok"]
    assert run.rc == 0, str(run)
    text = " ".join(run.output.split())
    assert "record: matches what runs" in text, text[-3000:]
    assert re.search(r"proxy: routes to (blue|green)", text), (
        "status does not say where the proxy routes"
    )
    assert "readyz: 200" in text
    assert "audit" in text.lower(), "status does not show the audit log"


def test_status_fails_and_says_so_when_the_record_differs_from_what_runs(runs):
    run: Run = runs["status-differs"]
    assert run.rc != 0, "status passed with a wrong record"
    assert "What runs differs from the record: the proxy routes to" in " ".join(
        run.output.split()
    ), str(run)


def test_status_fails_naming_a_slot_that_runs_but_does_not_serve(runs):
    run: Run = runs["status-idle-runs"]
    assert run.rc != 0, "status passed with both slots running"
    text = " ".join(run.output.split())
    assert f"backend-{runs['idle']} runs but does not serve" in text, str(run)
