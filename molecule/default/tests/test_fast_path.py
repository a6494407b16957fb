"""The no-change fast path (side_effect_fast_path.yml): a repeated deploy stops early, and
every kind of change still takes the full path, which mends it."""

from __future__ import annotations

import pytest
from conftest import REPORTS, recap, report

STOPPED_EARLY = "Nothing changed since the last full deploy"
# A task only the full path runs (the first of roles/docker_engine).
FULL_PATH_TASK = "TASK [docker_engine : Check that the host runs a supported distribution]"
CHANGES = ["variable", "stopped-container", "edited-file", "source-file"]


def log(case: str) -> str:
    return (REPORTS / f"fast-path-{case}.log").read_text()


def run(case: str) -> dict[str, float]:
    result: dict[str, float] = report("fast-path.json")["runs"][case]
    return result


@pytest.mark.parametrize("case", ["unchanged", "unchanged-check"])
def test_a_deploy_with_nothing_changed_stops_early(case):
    assert run(case)["rc"] == 0, log(case)[-3000:]
    text = log(case)
    assert STOPPED_EARLY in text, f"the {case} run took the full path:\n{text[-3000:]}"
    assert FULL_PATH_TASK not in text, f"the {case} run went on past the fast path:\n{text[-3000:]}"
    assert recap(text)["changed"] == 0, text[-3000:]


def test_the_audit_log_records_the_early_stop_as_unchanged():
    entries = report("fast-path.json")["audit"]
    unchanged = [entry for entry in entries if entry.get("result") == "unchanged"]
    assert unchanged, f"no audit entry with result 'unchanged' among the last ones: {entries}"
    assert unchanged[0]["from_release"] == unchanged[0]["to_release"] != "", unchanged[0]


@pytest.mark.parametrize("case", CHANGES)
def test_each_kind_of_change_takes_the_full_path(case):
    assert run(case)["rc"] == 0, log(case)[-3000:]
    text = log(case)
    assert STOPPED_EARLY not in text, f"the fast path skipped a change ({case}):\n{text[-3000:]}"
    assert FULL_PATH_TASK in text, f"the {case} run did not run the roles:\n{text[-3000:]}"


def test_the_full_path_with_nothing_to_roll_out_changes_nothing():
    # A variable that names no release: every step runs, and none has anything to do.
    assert recap(log("variable"))["changed"] == 0, log("variable")[-3000:]


def test_the_full_path_started_the_stopped_proxy():
    assert report("fast-path.json")["proxy_after"] == "running"


def test_the_full_path_undid_the_hand_edit():
    assert report("fast-path.json")["hand_edits_after"] == 0
