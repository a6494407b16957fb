"""The no-change fast path (roles/fast_path): a repeated deploy stops early, in check mode
too, and says so in the audit log; each kind of change still takes the full path, which
mends it: a variable that names no release, a hand-edited file under /opt/nica, a new
file in the source tree on the controller, and a base image pulled again under the same
name (a --check run: the image is put back after it). Containers removed or stopped are
test_compose_down's redeploy. The record the fast path compares with is the one that
redeploy left."""

from __future__ import annotations

import json
from typing import Any

import pytest
from runs import FULL_PATH_TASK, REPO, STOPPED_EARLY, Run, deploy, sh

NGINX_CONF = "/opt/nica/compose/proxy/nginx.conf"
PROBE = REPO / "molecule" / "default" / ".fast-path-probe"
BASE = "nica-test/python:3.11-slim"


@pytest.fixture(scope="module")
def runs(host: Any) -> dict[str, Any]:
    done: dict[str, Any] = {
        "unchanged": deploy("fast-path-unchanged"),
        "unchanged-check": deploy("fast-path-unchanged-check", "--check", "--diff"),
        "variable": deploy("fast-path-variable", "-e", "backend_drain_seconds=3"),
    }
    sh(host, f"echo '# edited by hand on the host' >> {NGINX_CONF}")
    done["edited-file"] = deploy("fast-path-edited-file")
    done["hand_edits_after"] = int(
        sh(host, f"grep -c 'edited by hand' {NGINX_CONF} || true").strip()
    )
    PROBE.write_text("a file in the source tree that no release contains\n")
    try:
        done["source-file"] = deploy("fast-path-source-file")
    finally:
        PROBE.unlink()
    # Another image under the base image's name, as a registry's newer build would be.
    original = sh(host, f"docker image inspect -f '{{{{.Id}}}}' {BASE}").strip()
    sh(host, f"docker tag nica-test/nginx:stable {BASE}")
    try:
        done["base-image"] = deploy("fast-path-base-image", "--check")
    finally:
        sh(host, f"docker tag {original} {BASE}")
    done["audit"] = [
        json.loads(line) for line in sh(host, "tail -n 8 /opt/nica/state/audit.jsonl").splitlines()
    ]
    return done


@pytest.mark.parametrize("case", ["unchanged", "unchanged-check"])
def test_a_deploy_with_nothing_changed_stops_early(runs, case):
    run: Run = runs[case]
    assert run.rc == 0, str(run)
    assert STOPPED_EARLY in run.output, f"the {case} run took the full path: {run}"
    assert not run.ran(FULL_PATH_TASK), f"the {case} run went on past the fast path: {run}"
    assert run.recap()["changed"] == 0, str(run)


def test_the_audit_log_records_the_early_stop_as_unchanged(runs):
    unchanged = [entry for entry in runs["audit"] if entry.get("result") == "unchanged"]
    assert unchanged, f"no audit entry with result 'unchanged' among the last ones: {runs['audit']}"
    assert unchanged[0]["from_release"] == unchanged[0]["to_release"] != "", unchanged[0]


@pytest.mark.parametrize("case", ["variable", "edited-file", "source-file", "base-image"])
def test_each_kind_of_change_takes_the_full_path(runs, case):
    run: Run = runs[case]
    assert run.rc == 0, str(run)
    assert STOPPED_EARLY not in run.output, f"the fast path skipped a change ({case}): {run}"
    assert run.ran(FULL_PATH_TASK), f"the {case} run did not run the roles: {run}"


def test_the_full_path_with_nothing_to_roll_out_changes_nothing(runs):
    # A variable that names no release: every step runs, and none has anything to do.
    assert runs["variable"].recap()["changed"] == 0, str(runs["variable"])


def test_the_full_path_undid_the_hand_edit(runs):
    assert runs["hand_edits_after"] == 0, "the deploy after the hand edit left nginx.conf edited"


def test_a_base_image_pulled_again_makes_a_new_release(runs):
    # Named after the image's ID, not its name: the dry run would build a new image.
    assert "would build nica-pro-backend:" in runs["base-image"].output, str(runs["base-image"])
