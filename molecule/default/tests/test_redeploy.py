"""Redeploys and a rollback under a steady client (side_effect_redeploy.yml): no request dropped."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import REPORTS, report

CASES = ["config-change", "never-ready", "rollback", "redeploy"]


@pytest.fixture(scope="module", params=CASES)
def case(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, report(f"redeploy-{request.param}.json")


def test_the_client_sent_requests_throughout(case):
    name, run = case
    client = run["client"]
    assert client["sent"] >= 100, f"{name}: the steady client sent only {client['sent']} requests"
    assert client["stopped_by"] == "stop file", f"{name}: the client ran out of budget first: {client}"


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
    assert (after["previous_release"], after["previous_slot"]) == (before["release"], before["slot"])


def test_the_new_release_runs_with_its_own_stack_env(host):
    run = report("redeploy-config-change.json")
    new = host.file(f"/opt/nica/releases/{run['after']['release']}/stack.env").content_string
    old = host.file(f"/opt/nica/releases/{run['before']['release']}/stack.env").content_string
    assert "NICA_REDEPLOY_MARK=config-change" in new
    assert "NICA_REDEPLOY_MARK" not in old, "the serving release's stack.env was rewritten"


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
    assert rollback["after"]["slot"] == change["before"]["slot"], "the rollback did not reuse the old slot"


def test_each_release_runs_with_the_configuration_it_was_deployed_with():
    change = report("redeploy-config-change.json")["serving"]
    rollback = report("redeploy-rollback.json")["serving"]
    assert "NICA_REDEPLOY_MARK" in change["env_names"], f"the new release runs without its setting: {change}"
    assert "NICA_REDEPLOY_MARK" not in rollback["env_names"], (
        f"the rolled-back release runs with the newer release's setting: {rollback}"
    )
