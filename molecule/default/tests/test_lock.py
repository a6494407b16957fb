"""The deploy lock and the audit log (roles/deploy_lock), playbooks/lock.yml and logs.yml.
Each run is a real ansible-playbook: lock_run.yml (a run under the lock that leaves the
stack alone), lock.yml or logs.yml.
1. a holder takes the lock and keeps it (in the background);
2. a second run fails within 15 s naming the holder; a --check run too, writing nothing;
   lock.yml shows the holder alive;
3. the holder gets SIGKILL (kill -9); a --check run says it would take over and writes
   nothing; lock.yml shows the holder gone; the next run takes over saying so;
4. a run with deploy_lock_wait waits for a holder and gets the lock once it is released;
5. leases: another controller's lock with a fresh heartbeat is refused, one whose
   heartbeat is older than deploy_lock_stale_after is taken over;
6. lock.yml -e deploy_lock_force_release=true under --check (nothing written), then for real;
7. logs.yml: bad input is refused in one line; it prints every service's last lines, also
   under --check.
"""

import getpass
import json
import os
import re
import signal
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from runs import REPORTS, SCENARIO, Run, ansible_playbook, env, playbook, sh

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
LOCK_RUN = str(SCENARIO / "lock_run.yml")
# A run on another controller (a CI runner), as lock_run.yml's lookup would record it.
FOREIGN = {
    "id": "ci-runner-7:4242:99:feedbeef",
    "controller_user": "jenkins",
    "controller_host": "ci-runner-7",
    "pid": 4242,
    "pid_start": 99,
    "boot_id": "feedbeef-0000-4000-8000-000000000000",
    "pidns": "pid:[4026531836]",
    "action": "deploy",
}
LOGS: dict[str, str] = {}


def iso(delta_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta_s)).strftime("%Y-%m-%dT%H:%M:%SZ")


def checksums(host: Any) -> list[str]:
    return [
        host.file(path).sha256sum if host.file(path).exists else "absent"
        for path in (RECORD, AUDIT)
    ]


def write_record(host: Any, record: dict[str, Any]) -> None:
    sh(host, f"printf %s {json.dumps(json.dumps(record))} > {RECORD} && chmod 0640 {RECORD}")


def hold(name: str, hold_until: Path, *args: str) -> subprocess.Popen[bytes]:
    """lock_run.yml in the background, holding the lock until `hold_until` appears."""
    hold_until.unlink(missing_ok=True)
    Path(f"{hold_until}.held").unlink(missing_ok=True)
    command = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], LOCK_RUN,
               "-e", f"lock_test_hold_until={hold_until}", *args]  # fmt: skip
    with (REPORTS / f"{name}.log").open("wb") as out:
        return subprocess.Popen(
            command, env=env(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )


def wait_for(path: Path, seconds: int, why: str) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, why
        time.sleep(0.5)


@pytest.fixture(scope="module")
def lock(host: Any) -> dict[str, Any]:
    first, second = REPORTS / "lock-hold-first", REPORTS / "lock-hold-second"
    done: dict[str, Any] = {
        "host": host.backend.host,
        "controller_host": socket.gethostname(),
        "controller_user": os.environ.get("SUDO_USER") or getpass.getuser(),
        "runs": {},
        "checksums": {},
    }
    audit_before = host.file(AUDIT).content_string if host.file(AUDIT).exists else ""

    def run(name: str, *args: str) -> Run:
        result = ansible_playbook(name, *args)
        done["runs"][name.removeprefix("lock-")] = {"rc": result.rc, "seconds": result.seconds}
        LOGS[name] = result.output
        return result

    try:
        # 1. a holder
        holder = hold("lock-holder", first, "-e", "deploy_lock_action=deploy")
        done["holder_pid"] = holder.pid
        wait_for(
            Path(f"{first}.held"),
            120,
            "the holder never took the lock; see build/reports/lock-holder.log",
        )
        # 2. runs against the live lock
        before = checksums(host)
        run("lock-second", LOCK_RUN, "-e", "deploy_lock_action=rollback")
        run("lock-second-check", LOCK_RUN, "--check", "-e", "deploy_lock_action=rollback")
        run("lock-show-alive", playbook("lock"))
        done["checksums"]["live"] = [before, checksums(host)]
        # 3. the holder is killed, as `kill -9` or a lost terminal does to an operator's run
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        first.touch()  # lets the killed holder's orphaned worker finish its wait
        before = checksums(host)
        run("lock-takeover-check", LOCK_RUN, "--check", "-e", "deploy_lock_action=restore")
        run("lock-show-gone", playbook("lock"))
        done["checksums"]["dead"] = [before, checksums(host)]
        run("lock-takeover", LOCK_RUN, "-e", "deploy_lock_action=restore")
        # 4. waiting for the lock
        holder_again = hold("lock-holder-again", second, "-e", "deploy_lock_action=deploy")
        done["holder_again_pid"] = holder_again.pid
        wait_for(Path(f"{second}.held"), 120, "the second holder never took the lock")
        waiter_log = REPORTS / "lock-waiter.log"
        with waiter_log.open("wb") as out:
            waiter = subprocess.Popen(
                [
                    "ansible-playbook",
                    "-i",
                    os.environ["MOLECULE_INVENTORY_FILE"],
                    LOCK_RUN,
                    "-e",
                    "deploy_lock_action=key-rotation",
                    "-e",
                    "deploy_lock_wait=120",
                ],
                env=env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 120
        while "RETRYING" not in waiter_log.read_text():
            assert time.monotonic() < deadline, "the waiter never found the lock held"
            time.sleep(0.5)
        second.touch()
        holder_again.wait(timeout=120)
        done["runs"]["waiter"] = {"rc": waiter.wait(timeout=180)}
        LOGS["lock-waiter"] = waiter_log.read_text()
        # 5. leases of another controller
        write_record(host, {**FOREIGN, "since": iso(-60), "heartbeat": iso()})
        run("lock-lease-fresh", LOCK_RUN)
        write_record(host, {**FOREIGN, "since": iso(-10800), "heartbeat": iso(-7200)})
        run("lock-lease-expired", LOCK_RUN)
        # 6. a forced release
        write_record(
            host, {**FOREIGN, "controller_user": "ops", "since": iso(), "heartbeat": iso()}
        )
        before = checksums(host)
        run("lock-force-check", playbook("lock"), "--check", "-e", "deploy_lock_force_release=true")
        done["checksums"]["force"] = [before, checksums(host)]
        run("lock-force", playbook("lock"), "-e", "deploy_lock_force_release=true")
        # 7. logs.yml
        done["services"] = sh(
            host, "cd /opt/nica/compose && docker compose config --services"
        ).split()
        for name, args in [
            ("bad-lines", ["-e", "logs_lines=lots"]),
            ("bad-since", ["-e", "logs_since=yesterday"]),
            ("tail", ["-e", "logs_lines=5"]),
            ("since-check", ["--check", "-e", "logs_since=24h", "-e", "logs_lines=3"]),
            ("since-future", ["-e", "logs_since=2099-01-01T00:00:00Z"]),
        ]:
            result = ansible_playbook(f"logs-{name}", playbook("logs"), *args)
            done["runs"][name] = {"rc": result.rc}
            LOGS[f"logs-{name}"] = result.output
    finally:
        first.touch()
        second.touch()
    done["audit_before"] = audit_before
    done["audit_after"] = host.file(AUDIT).content_string
    return done


def log(name: str) -> str:
    """The output of one run of this story."""
    return LOGS[name]


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
def entries(lock: dict[str, Any]) -> list[dict[str, Any]]:
    """The audit entries this story's runs added."""
    added = lock["audit_after"][len(lock["audit_before"]) :]
    return [json.loads(line) for line in added.splitlines() if line.strip()]


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
    assert lock["runs"]["takeover-check"]["rc"] == 0, log("lock-takeover-check")[-3000:]
    warnings = lines_starting(log("lock-takeover-check"), "[WARNING]: Would take over")
    assert warnings, "the --check run did not say it would take the lock over"


def test_next_run_takes_over_saying_the_holder_is_gone(lock):
    assert lock["runs"]["takeover"]["rc"] == 0, log("lock-takeover")[-3000:]
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
    assert waiter["rc"] == 0, log("lock-waiter")[-3000:]
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
    assert lock["runs"]["lease-expired"]["rc"] == 0, log("lock-lease-expired")[-3000:]
    (warning,) = lines_starting(log("lock-lease-expired"), "[WARNING]: Took over")
    assert re.search(
        r"no heartbeat for \d+ s, more than deploy_lock_stale_after \(3600 s\)", warning
    ), f"the takeover does not say the lease expired: {warning}"


# --- a forced release ---


def test_forced_release_under_check_says_what_it_would_release(lock):
    assert lock["runs"]["force-check"]["rc"] == 0, log("lock-force-check")[-3000:]
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


def test_audit_log_was_only_appended_to(lock):
    assert lock["audit_after"].startswith(lock["audit_before"]), (
        "the audit log's earlier entries were changed"
    )


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
    assert lock["runs"]["tail"]["rc"] == 0, log("logs-tail")[-3000:]
    missing = services_without_lines(lock, "tail")
    assert not missing, f"no timestamped lines of {missing}"


def test_logs_prints_every_service_under_check(lock):
    assert lock["runs"]["since-check"]["rc"] == 0, log("logs-since-check")[-3000:]
    missing = services_without_lines(lock, "since-check")
    assert not missing, f"under --check, no lines of {missing}"


def test_logs_since_leaves_out_older_lines(lock):
    assert lock["runs"]["since-future"]["rc"] == 0, log("logs-since-future")[-3000:]
    assert services_without_lines(lock, "since-future") == lock["services"], (
        "lines from before logs_since were printed"
    )
    assert "(no log lines)" in log("logs-since-future")
