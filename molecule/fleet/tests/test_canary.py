"""A release that never becomes ready (uvicorn refuses its log level), rolled across the
fleet: it fails on the canary and the rollout stops there; the canary keeps serving the
release it served, in the same container, the second host is not reached, and the table
at the end of the run says so."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fleet import BACKENDS, CANARY, SECOND
from runs import Run, deploy, inspect, record, serving

NEVER_READY = {"backend_extra_env": {"UVICORN_LOG_LEVEL": "loudest"}}


@pytest.fixture(scope="module")
def story(hosts: dict[str, Any]) -> dict[str, Any]:
    before = {name: record(hosts[name]) for name in BACKENDS}
    serving_before = inspect(hosts[CANARY], serving(hosts[CANARY]))
    # The failing release's wait: uvicorn exits at once, so 20 s only bounds the restarts.
    run = deploy("never-ready", "-e", json.dumps(NEVER_READY), "-e", "backend_wait_timeout=20")
    serving_after = inspect(hosts[CANARY], serving(hosts[CANARY]))
    return {
        "run": run,
        "before": before,
        "after": {name: record(hosts[name]) for name in BACKENDS},
        "serving": [
            [c.get("Id"), c.get("State", {}).get("StartedAt")]
            for c in (serving_before, serving_after)
        ],
    }


def test_a_release_that_fails_on_the_canary_fails_the_run(story):
    run: Run = story["run"]
    assert run.rc != 0, f"the deploy of a release that never becomes ready succeeded: {run}"


def test_the_canary_keeps_serving_its_release_after_the_failure(story):
    before, after = story["before"][CANARY], story["after"][CANARY]
    assert after["release"] == before["release"], (
        f"the canary's record moved from {before['release']} to {after['release']}"
    )


def test_the_canarys_serving_container_was_untouched(story):
    before, after = story["serving"]
    assert after == before, "the canary's serving container was replaced or restarted"


def test_the_second_host_was_not_touched_by_the_failed_rollout(story):
    assert story["after"][SECOND] == story["before"][SECOND], (
        "the second host's record changed although the canary failed first"
    )


def test_the_final_table_names_the_canary_failed_and_the_second_host_not_reached(story):
    rows = story["run"].table()
    assert rows.get(CANARY, ("", ""))[1].startswith("FAILED: "), (
        f"expected the canary FAILED, table: {rows}"
    )
    assert "did not become ready" in rows[CANARY][1], (
        f"expected the reason in the canary's row: {rows[CANARY]}"
    )
    second = story["before"][SECOND]["release"]
    assert rows.get(SECOND) == (second, "not reached"), (
        f"expected {SECOND} not reached, on {second}; table: {rows}"
    )
