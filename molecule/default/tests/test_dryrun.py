"""Dry runs and partial runs (side_effect_dryrun.yml): they run to the end and change nothing."""

from __future__ import annotations

import re

import pytest
from conftest import REPORTS, recap, report

CHECKS = ["check-setting", "check-code"]
TAGS = [
    "docker_engine",
    "model_cache",
    "backend_preflight",
    "backend_image",
    "backend_config",
    "backend_rollout",
]


def log(name: str) -> str:
    return (REPORTS / f"dryrun-{name}.log").read_text()


def said(name: str) -> str:
    """The run's output with its line wrapping undone (the yaml callback folds messages)."""
    return " ".join(log(name).replace("'", " ").split())


@pytest.mark.parametrize("name", CHECKS)
def test_a_dry_run_runs_to_the_end(name):
    rc = report("dryrun.json")["rc"][name]
    assert rc == 0, f"deploy.yml --check --diff ({name}) exited {rc}: {log(name)[-3000:]}"
    assert recap(log(name))["failed"] == 0


def test_a_dry_run_of_a_setting_says_what_it_would_roll_out():
    text = said("check-setting")
    assert "would prepare" in text and "cut the proxy over" in text, text[-3000:]
    assert "settings that change: NICA_DRY_RUN_MARK" in text, (
        "the dry run does not name the setting"
    )
    assert "NICA_DRY_RUN_MARK=changed" not in text, "the dry run printed a setting's value"


def test_a_dry_run_of_new_code_says_it_would_build_and_roll_out():
    text = said("check-code")
    assert "would build nica-pro-backend:" in text, text[-3000:]
    assert "would prepare" in text


def test_the_dry_runs_and_tags_changed_nothing_on_the_host():
    runs = report("dryrun.json")
    assert runs["host_after"] == runs["host_before"], "a dry run or a tag alone changed the host"


@pytest.mark.parametrize("tag", TAGS)
def test_each_tag_works_alone(tag):
    name = f"tag-{tag}"
    rc = report("dryrun.json")["rc"][name]
    assert rc == 0, f"--tags {tag} exited {rc}: {log(name)[-3000:]}"
    counters = recap(log(name))
    assert counters["changed"] == 0, (
        f"--tags {tag} changed {counters['changed']} things with nothing to change"
    )
    assert counters["ok"] > 1, f"--tags {tag} ran nothing"


def test_status_reports_what_runs_and_passes_on_a_healthy_host():
    assert report("dryrun.json")["status_rc"]["ok"] == 0, (REPORTS / "status-ok.log").read_text()[
        -3000:
    ]
    text = " ".join((REPORTS / "status-ok.log").read_text().split())
    assert "record: matches what runs" in text, text[-3000:]
    assert re.search(r"proxy: routes to (blue|green)", text), (
        "status does not say where the proxy routes"
    )
    assert "readyz: 200" in text
    assert "audit" in text.lower(), "status does not show the audit log"


def test_status_fails_and_says_so_when_the_record_differs_from_what_runs():
    assert report("dryrun.json")["status_rc"]["differs"] != 0, "status passed with a wrong record"
    text = " ".join((REPORTS / "status-differs.log").read_text().split())
    assert "What runs differs from the record: the proxy routes to" in text, text[-3000:]
