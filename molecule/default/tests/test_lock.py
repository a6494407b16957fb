"""The deploy lock and the audit log (roles/deploy_lock), playbooks/lock.yml and logs.yml.

Recorded by side_effect_lock.yml: a holder kept the lock while other runs tried, was
killed with SIGKILL and taken over; a run waited for the lock; another controller's
lease was refused while fresh and taken over once expired; lock.yml showed and released
the lock; logs.yml refused bad input and, where the stack is deployed, printed its logs.
"""

import json
import re
from typing import Any

import pytest
from conftest import ANSI_ESCAPE, REPORTS, report

RECORD = "/opt/nica/state/deploy-lock.json"
AUDIT = "/opt/nica/state/audit.jsonl"
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
ERROR = "[ERROR]: Task failed: Action failed: "
AUDIT_FIELDS = {
    "time",
    "controller_user",
    "controller_host",
    "action",
    "from_release",
    "to_release",
    "result",
    "duration_s",
    "run",
    "detail",
}


@pytest.fixture(scope="module")
def lock() -> dict[str, Any]:
    return dict(report("lock.json"))


def log(name: str) -> str:
    """The output of one run of the side effect, without color codes."""
    return ANSI_ESCAPE.sub("", (REPORTS / f"{name}.log").read_text())


def flat(text: str) -> str:
    """Output with Ansible's line wrapping of long values undone."""
    return re.sub(r"\s+", " ", text)


def lines_starting(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def holder(lock: dict[str, Any], pid_key: str = "holder_pid") -> str:
    """How the lock names the first holder: `deploy by USER@CONTROLLER (pid N) since ...`."""
    return (
        f"deploy by {re.escape(lock['controller_user'])}@{re.escape(lock['controller_host'])}"
        f" \\(pid {lock[pid_key]}\\) since {ISO}"
    )


@pytest.fixture(scope="module")
def entries() -> list[dict[str, Any]]:
    """The audit entries the side effect's runs added."""
    before = (REPORTS / "lock-audit-before.jsonl").read_text()
    after = (REPORTS / "lock-audit-after.jsonl").read_text()
    return [json.loads(line) for line in after[len(before) :].splitlines() if line.strip()]


# --- a second run against a live lock ---


def test_second_run_fails_within_15_seconds(lock):
    second = lock["runs"]["second"]
    assert second["rc"] != 0, "a second run got past a held lock"
    assert second["seconds"] < 15, f"the second run took {second['seconds']} s to fail"


def test_second_run_names_holder_since_and_action_in_one_line(lock):
    errors = lines_starting(log("lock-second"), ERROR)
    assert errors, "the refused run printed no error line"
    wanted = rf"{lock['host']} is locked: {holder(lock)}, last heartbeat .*; that run is alive"
    assert re.search(wanted, errors[-1]), f"the refusal does not name the holder: {errors[-1]}"


def test_refusal_says_how_to_see_and_release_the_lock(lock):
    (error,) = lines_starting(log("lock-second"), ERROR)
    for hint in (f"playbooks/lock.yml --limit {lock['host']}", "-e deploy_lock_force_release=true"):
        assert hint in error, f"the refusal does not say {hint!r}: {error}"


def test_check_mode_run_refuses_a_live_lock(lock):
    assert lock["runs"]["second-check"]["rc"] != 0, "a --check run did not fail on a held lock"
    errors = lines_starting(log("lock-second-check"), ERROR)
    assert errors and re.search(holder(lock), errors[-1]), "the --check refusal names no holder"


def test_refused_runs_record_nothing(entries):
    refused = [entry for entry in entries if entry["action"] == "rollback"]
    assert refused == [], f"a refused run wrote audit entries: {refused}"


@pytest.mark.parametrize("case", ["live", "dead", "force"])
def test_check_mode_writes_neither_lock_nor_audit_log(lock, case):
    before, after = lock["checksums"][case]
    assert after == before, f"a --check run ({case} case) changed the lock or the audit log"


def test_lock_yml_shows_the_live_holder(lock):
    shown = flat(log("lock-show-alive"))
    wanted = (
        rf"lock: {holder(lock)}; last heartbeat {ISO} \(\d+ s ago\); "
        rf"alive: pid {lock['holder_pid']} still runs"
    )
    assert re.search(wanted, shown), "lock.yml did not show the holder as alive"


# --- the holder is killed ---


def test_lock_yml_shows_the_killed_holder_gone(lock):
    shown = flat(log("lock-show-gone"))
    wanted = (
        rf"gone: pid {lock['holder_pid']} no longer runs on {re.escape(lock['controller_host'])}"
    )
    assert re.search(wanted, shown), "lock.yml did not show the killed holder as gone"


def test_check_mode_run_says_it_would_take_over(lock):
    assert lock["runs"]["takeover-check"]["rc"] == 0, "see build/reports/lock-takeover-check.log"
    warnings = lines_starting(log("lock-takeover-check"), "[WARNING]: Would take over")
    assert warnings, "the --check run did not say it would take the lock over"


def test_next_run_takes_over_saying_the_holder_is_gone(lock):
    assert lock["runs"]["takeover"]["rc"] == 0, "see build/reports/lock-takeover.log"
    wanted = (
        rf"\[WARNING\]: Took over the deploy lock of {lock['host']}: {holder(lock)} is gone: "
        rf"pid {lock['holder_pid']} no longer runs on {re.escape(lock['controller_host'])}$"
    )
    lines = log("lock-takeover").splitlines()
    assert any(re.match(wanted, line) for line in lines), "no one-line takeover naming the holder"


def test_takeover_is_audited(lock, entries):
    takeovers = [
        e
        for e in entries
        if e["action"] == "takeover" and f"(pid {lock['holder_pid']})" in e["detail"]
    ]
    assert takeovers, f"no takeover entry for the killed holder in {[e['action'] for e in entries]}"


def test_taking_over_run_is_audited_as_its_action(entries):
    assert any(e["action"] == "restore" and e["result"] == "ok" for e in entries), (
        "the restore that took the lock over has no audit entry"
    )


# --- waiting ---


def test_waiting_run_gets_the_lock_once_it_is_released(lock):
    waiter = lock["runs"]["waiter"]
    assert waiter["rc"] == 0, "see build/reports/lock-waiter.log"
    assert "RETRYING" in log("lock-waiter"), "the waiter never found the lock held"


def test_waiting_run_follows_the_holder_in_the_audit_log(lock, entries):
    actions = [(e["action"], e["run"].split(":")[1]) for e in entries]
    holder_done = actions.index(("deploy", str(lock["holder_again_pid"])))
    rotations = [i for i, (action, _) in enumerate(actions) if action == "key-rotation"]
    assert rotations and rotations[0] > holder_done, f"audit order: {actions}"


# --- leases of another controller ---


def test_fresh_lease_of_another_controller_is_refused(lock):
    assert lock["runs"]["lease-fresh"]["rc"] != 0, "a fresh lease was taken over"
    (error,) = lines_starting(log("lock-lease-fresh"), ERROR)
    for part in ("deploy by jenkins@ci-runner-7", "held from another controller (ci-runner-7)"):
        assert part in error, f"the refusal does not say {part!r}: {error}"


def test_expired_lease_is_taken_over(lock):
    assert lock["runs"]["lease-expired"]["rc"] == 0, "see build/reports/lock-lease-expired.log"
    (warning,) = lines_starting(log("lock-lease-expired"), "[WARNING]: Took over")
    assert re.search(
        r"no heartbeat for \d+ s, more than deploy_lock_stale_after \(3600 s\)", warning
    ), f"the takeover does not say the lease expired: {warning}"


# --- a forced release ---


def test_forced_release_under_check_says_what_it_would_release(lock):
    assert lock["runs"]["force-check"]["rc"] == 0, "see build/reports/lock-force-check.log"
    assert "Would release the deploy lock" in flat(log("lock-force-check"))


def test_forced_release_is_audited_naming_whose_lock(lock, entries):
    assert lock["runs"]["force"]["rc"] == 0, "see build/reports/lock-force.log"
    unlocks = [e for e in entries if e["action"] == "unlock"]
    assert unlocks and "released the lock of deploy by ops@ci-runner-7" in unlocks[-1]["detail"], (
        unlocks
    )


def test_lock_is_free_afterwards(host):
    assert not host.file(RECORD).exists, f"{RECORD} is still there after the forced release"


# --- the audit log ---


def test_audit_log_is_0640_root(host):
    audit = host.file(AUDIT)
    assert audit.exists, f"{AUDIT} is missing"
    assert (audit.mode, audit.user, audit.group) == (0o640, "root", "root"), (
        f"{AUDIT} is {oct(audit.mode)} {audit.user}:{audit.group}, not 0640 root:root"
    )


def test_audit_log_was_only_appended_to():
    before = (REPORTS / "lock-audit-before.jsonl").read_text()
    after = (REPORTS / "lock-audit-after.jsonl").read_text()
    assert after.startswith(before), "the audit log's earlier entries were changed"


def test_every_entry_has_the_audit_fields(entries):
    assert entries, "the runs wrote no audit entries"
    for entry in entries:
        assert set(entry) == AUDIT_FIELDS, f"fields {sorted(entry)}"
        assert re.fullmatch(ISO, entry["time"]), f"time is not UTC ISO: {entry['time']}"
        assert isinstance(entry["duration_s"], int) and entry["duration_s"] >= 0, entry


def test_release_records_from_and_to_release(entries):
    released = [e for e in entries if e["action"] in ("deploy", "restore", "key-rotation")]
    assert released, "no release entries"
    assert all(
        (e["from_release"], e["to_release"]) == ("lock-test:1", "lock-test:2") for e in released
    )


# --- logs.yml ---


@pytest.mark.parametrize(
    ("case", "variable"), [("bad-lines", "logs_lines"), ("bad-since", "logs_since")]
)
def test_logs_refuses_bad_input_in_one_line(lock, case, variable):
    assert lock["runs"][case]["rc"] != 0, f"logs.yml accepted a bad {variable}"
    (error,) = lines_starting(log(f"logs-{case}"), ERROR)
    assert error.startswith(f"{ERROR}{variable} must be"), (
        f"the error does not name {variable}: {error}"
    )


def services_without_lines(lock: dict[str, Any], case: str) -> list[str]:
    """The stack's services that have no timestamped line in a logs.yml run's output."""
    shown = flat(log(f"logs-{case}"))
    return [s for s in lock["services"] if not re.search(rf"{s}-1\s+\| {ISO[:-1]}", shown)]


def test_logs_prints_the_last_lines_of_every_service(lock):
    if not lock["stack_deployed"]:
        pytest.skip("no stack on the host (side_effect_lock.yml run stand-alone)")
    assert lock["runs"]["tail"]["rc"] == 0, "see build/reports/logs-tail.log"
    missing = services_without_lines(lock, "tail")
    assert not missing, f"no timestamped lines of {missing}"


def test_logs_prints_every_service_under_check(lock):
    if not lock["stack_deployed"]:
        pytest.skip("no stack on the host (side_effect_lock.yml run stand-alone)")
    assert lock["runs"]["since-check"]["rc"] == 0, "see build/reports/logs-since-check.log"
    missing = services_without_lines(lock, "since-check")
    assert not missing, f"under --check, no lines of {missing}"


def test_logs_since_leaves_out_older_lines(lock):
    if not lock["stack_deployed"]:
        pytest.skip("no stack on the host (side_effect_lock.yml run stand-alone)")
    assert lock["runs"]["since-future"]["rc"] == 0, "see build/reports/logs-since-future.log"
    assert services_without_lines(lock, "since-future") == lock["services"], (
        "lines from before logs_since were printed"
    )
    assert "(no log lines)" in log("logs-since-future")
