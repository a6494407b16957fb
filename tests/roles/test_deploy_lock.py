"""The deploy_lock module's logic (roles/deploy_lock/library/deploy_lock.py).

Real files in a temporary state directory, real flock(2), real processes racing; the
clock is the only thing the tests set. Run from the repository root:
    python -m pytest tests/roles -q
"""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .loader import REPO, load

lock = load("deploy_lock_module", REPO / "roles/deploy_lock/library/deploy_lock.py")

Factory = Callable[..., Any]  # store(check_mode=False) -> a LockStore
T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
STALE_AFTER = 3600


def run(name: str, controller: str = "ctl-a", pid: int = 4242, start: int = 1000) -> dict[str, Any]:
    """A run as lookup('deploy_lock_controller', 'run') describes one."""
    return {
        "id": f"{controller}:{pid}:{start}:boot",
        "controller_user": name,
        "controller_host": controller,
        "pid": pid,
        "pid_start": start,
        "boot_id": f"boot-of-{controller}",
        "pidns": "pid:[4026531836]",
        "started": "2027-01-15T07:59:00Z",
    }


ALICE = run("alice", "ctl-a", pid=1001)
ALICE_AGAIN = run("alice", "ctl-a", pid=1002)  # another run from the same controller
BOB = run("bob", "ctl-b", pid=2001)  # a run from another controller


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "opt" / "nica" / "state"


@pytest.fixture()
def store(state_dir: Path, clock: Clock) -> Factory:
    """A LockStore on the temporary state directory (check_mode=... for a dry run)."""

    def make(check_mode: bool = False) -> Any:
        return lock.LockStore(
            str(state_dir),
            str(state_dir / "audit.jsonl"),
            host="web-1",
            check_mode=check_mode,
            clock=clock,
        )

    return make


def record(state_dir: Path) -> dict[str, Any] | None:
    path = state_dir / "deploy-lock.json"
    return dict(json.loads(path.read_text())) if path.exists() else None


def holder_id(state_dir: Path) -> str:
    """The run the lock record names ("" when the lock is free)."""
    held = record(state_dir)
    return str(held["id"]) if held else ""


def audit(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def snapshot(directory: Path) -> dict[str, bytes] | None:
    """Every file under a directory with its bytes (None: no directory)."""
    if not directory.exists():
        return None
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


# --- acquire ---


def test_acquire_records_the_holder(store: Factory, state_dir: Path) -> None:
    outcome = store().acquire(ALICE, "deploy", STALE_AFTER)
    assert outcome["acquired"], outcome["msg"]
    held = record(state_dir) or {}
    assert held, "no lock record was written"
    assert {k: held[k] for k in ("id", "controller_user", "controller_host", "pid", "action")} == {
        "id": ALICE["id"],
        "controller_user": "alice",
        "controller_host": "ctl-a",
        "pid": 1001,
        "action": "deploy",
    }
    assert held["since"] == "2027-01-15T08:00:00Z", (
        f"since is not the UTC time it was taken: {held}"
    )


def test_record_is_0640_in_a_0750_directory_with_no_temporary_file_left(
    store: Factory, state_dir: Path
) -> None:
    store().acquire(ALICE, "deploy", STALE_AFTER)
    assert stat.S_IMODE((state_dir / "deploy-lock.json").stat().st_mode) == 0o640
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o750
    leftovers = [p.name for p in state_dir.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == [], f"temporary files left next to the record: {leftovers}"


def test_same_run_acquires_again_keeping_since(
    store: Factory, state_dir: Path, clock: Clock
) -> None:
    store().acquire(ALICE, "rollback", STALE_AFTER)
    clock.now += 30
    outcome = store().acquire(ALICE, "rollback", STALE_AFTER)
    assert outcome["acquired"], f"the same run was refused its own lock: {outcome['msg']}"
    held = record(state_dir) or {}
    assert held.get("since") == "2027-01-15T08:00:00Z", (
        "taking it again must keep the original since"
    )
    assert held.get("heartbeat") == "2027-01-15T08:00:30Z", (
        "taking it again must renew the heartbeat"
    )


def test_another_controller_is_refused_with_one_line_naming_the_holder(
    store: Factory, clock: Clock
) -> None:
    store().acquire(ALICE, "deploy", STALE_AFTER)
    clock.now += 60
    outcome = store().acquire(BOB, "rollback", STALE_AFTER)
    assert not outcome["acquired"], "a second run got a held lock"
    msg = outcome["msg"]
    assert "\n" not in msg, f"the refusal is more than one line: {msg!r}"
    for part in (
        "web-1 is locked",
        "deploy by alice@ctl-a",
        "since 2027-01-15T08:00:00Z",
        "playbooks/lock.yml",
        "deploy_lock_force_release=true",
    ):
        assert part in msg, f"the refusal does not say {part!r}: {msg}"


def test_refusal_of_another_controller_says_when_the_lease_runs_out(
    store: Factory, clock: Clock
) -> None:
    store().acquire(ALICE, "deploy", STALE_AFTER)
    outcome = store().acquire(BOB, "deploy", STALE_AFTER)
    assert "at 2027-01-15T09:00:00Z" in outcome["msg"], f"no lease end in: {outcome['msg']}"


def test_holder_from_this_controller_needs_the_controllers_check(
    store: Factory, state_dir: Path
) -> None:
    store().acquire(ALICE, "deploy", STALE_AFTER)
    outcome = store().acquire(ALICE_AGAIN, "deploy", STALE_AFTER)
    assert not outcome["acquired"]
    assert outcome["needs_check"], "a holder from the same controller must be checked there"
    assert outcome["holder"]["id"] == ALICE["id"]
    assert holder_id(state_dir) == ALICE["id"], "the record changed without a verdict"


def test_holder_judged_alive_is_refused(store: Factory, state_dir: Path) -> None:
    store().acquire(ALICE, "deploy", STALE_AFTER)
    verdict = {"id": ALICE["id"], "state": "alive", "reason": "pid 1001 still runs on ctl-a"}
    outcome = store().acquire(ALICE_AGAIN, "deploy", STALE_AFTER, verdict)
    assert not outcome["acquired"]
    assert "that run is alive: pid 1001 still runs on ctl-a" in outcome["msg"], outcome["msg"]
    assert holder_id(state_dir) == ALICE["id"]


def test_a_live_holder_from_this_controller_keeps_the_lock_whatever_its_heartbeat(
    store: Factory, state_dir: Path, clock: Clock
) -> None:
    # A long deploy on this controller (a slow prefetch) whose last heartbeat is older than
    # the lease: its process still runs, so a second run must not take its lock. The lease
    # is only for holders this controller cannot check.
    store().acquire(ALICE, "deploy", STALE_AFTER)
    clock.now += STALE_AFTER * 2
    verdict = {"id": ALICE["id"], "state": "alive", "reason": "pid 1001 still runs on ctl-a"}
    outcome = store().acquire(ALICE_AGAIN, "deploy", STALE_AFTER, verdict)
    assert not outcome["acquired"], (
        "a live deploy lost its lock to a second run because of an old heartbeat"
    )
    assert "that run is alive" in outcome["msg"], outcome["msg"]
    assert holder_id(state_dir) == ALICE["id"]


def test_holder_whose_pid_is_gone_is_taken_over_with_one_line(
    store: Factory, state_dir: Path, clock: Clock
) -> None:
    store().acquire(ALICE, "deploy", STALE_AFTER)
    clock.now += 90
    gone = {"id": ALICE["id"], "state": "gone", "reason": "pid 1001 no longer runs on ctl-a"}
    lock_store = store()
    outcome = lock_store.acquire(ALICE_AGAIN, "restore", STALE_AFTER, gone)
    assert outcome["acquired"], outcome["msg"]
    assert holder_id(state_dir) == ALICE_AGAIN["id"], "the record does not name the new run"
    (line,) = lock_store.warnings
    for part in ("deploy by alice@ctl-a", "since 2027-01-15T08:00:00Z", "pid 1001 no longer runs"):
        assert part in line, f"the takeover line does not say {part!r}: {line}"


def test_takeover_is_audited(store: Factory, state_dir: Path, clock: Clock) -> None:
    store().acquire(ALICE, "deploy", STALE_AFTER)
    clock.now += 90
    gone = {"id": ALICE["id"], "state": "gone", "reason": "pid 1001 no longer runs on ctl-a"}
    store().acquire(ALICE_AGAIN, "deploy", STALE_AFTER, gone)
    (entry,) = audit(state_dir)
    assert entry["action"] == "takeover"
    assert entry["run"] == ALICE_AGAIN["id"]
    assert "deploy by alice@ctl-a (pid 1001)" in entry["detail"], entry
    assert entry["duration_s"] == 90, "a takeover's duration is how long the old lock was held"


def test_verdict_about_another_holder_takes_nothing_over(store: Factory, state_dir: Path) -> None:
    """The takeover is a compare-and-set: a verdict applies only to the record it judged."""
    store().acquire(ALICE, "deploy", STALE_AFTER)
    stale_verdict = {"id": "ctl-a:999:1:boot", "state": "gone", "reason": "pid 999 is gone"}
    outcome = store().acquire(ALICE_AGAIN, "deploy", STALE_AFTER, stale_verdict)
    assert not outcome["acquired"], "a verdict about another record took this one over"
    assert holder_id(state_dir) == ALICE["id"]


def test_lease_of_another_controller_expires(store: Factory, state_dir: Path, clock: Clock) -> None:
    store().acquire(BOB, "deploy", STALE_AFTER)
    clock.now += STALE_AFTER + 1
    lock_store = store()
    outcome = lock_store.acquire(ALICE, "deploy", STALE_AFTER)
    assert outcome["acquired"], f"an expired lease was not taken over: {outcome['msg']}"
    assert holder_id(state_dir) == ALICE["id"]
    assert "no heartbeat for 3601 s" in lock_store.warnings[0], lock_store.warnings


def test_heartbeat_keeps_the_lease_alive(store: Factory, clock: Clock) -> None:
    store().acquire(BOB, "deploy", STALE_AFTER)
    clock.now += STALE_AFTER - 10
    store().heartbeat(BOB)
    clock.now += 20
    outcome = store().acquire(ALICE, "deploy", STALE_AFTER)
    assert not outcome["acquired"], "a lease renewed 20 s ago was taken over"


def test_heartbeat_fails_once_the_lock_was_taken_over(store: Factory, clock: Clock) -> None:
    store().acquire(BOB, "deploy", STALE_AFTER)
    clock.now += STALE_AFTER + 1
    store().acquire(ALICE, "deploy", STALE_AFTER)
    with pytest.raises(lock.LockError, match="this run no longer holds the deploy lock"):
        store().heartbeat(BOB)


# --- release and the audit log ---


def test_release_writes_the_audit_entry_and_frees_the_lock(
    store: Factory, state_dir: Path, clock: Clock
) -> None:
    store().acquire(ALICE, "deploy", STALE_AFTER)
    clock.now += 93
    store().release(
        ALICE,
        "deploy",
        "ok",
        from_release="app:1.0",
        to_release="app:1.1",
        since="2027-01-15T08:00:00Z",
    )
    assert record(state_dir) is None, "release left the lock record"
    (entry,) = audit(state_dir)
    assert entry == {
        "time": "2027-01-15T08:01:33Z",
        "controller_user": "alice",
        "controller_host": "ctl-a",
        "action": "deploy",
        "from_release": "app:1.0",
        "to_release": "app:1.1",
        "result": "ok",
        "duration_s": 93,
        "run": ALICE["id"],
        "detail": "",
    }


def test_failed_action_is_audited_as_failed(store: Factory, state_dir: Path) -> None:
    store().acquire(ALICE, "rollback", STALE_AFTER)
    store().release(ALICE, "rollback", "failed")
    assert [(e["action"], e["result"]) for e in audit(state_dir)] == [("rollback", "failed")]


def test_release_after_a_takeover_keeps_the_new_holders_lock(
    store: Factory, state_dir: Path, clock: Clock
) -> None:
    store().acquire(BOB, "deploy", STALE_AFTER)
    clock.now += STALE_AFTER + 1
    store().acquire(ALICE, "deploy", STALE_AFTER)
    store().release(BOB, "deploy", "ok")
    assert holder_id(state_dir) == ALICE["id"], "the old holder released the new holder's lock"
    assert "taken over" in audit(state_dir)[-1]["detail"]


def test_audit_log_is_appended_to_never_rewritten(store: Factory, state_dir: Path) -> None:
    state_dir.mkdir(parents=True)
    log = state_dir / "audit.jsonl"
    before = b'{"action": "deploy", "note": "written before"}\n'
    log.write_bytes(before)
    log.chmod(0o600)
    store().acquire(ALICE, "deploy", STALE_AFTER)
    store().release(ALICE, "deploy", "ok")
    after = log.read_bytes()
    assert after.startswith(before), "the audit log's earlier lines were changed"
    assert len(after.splitlines()) == 2
    assert stat.S_IMODE(log.stat().st_mode) == 0o640, "the audit log is not 0640"


def test_audit_tail_returns_the_last_entries_oldest_first(store: Factory, state_dir: Path) -> None:
    for number in range(25):
        store().acquire(ALICE, "deploy", STALE_AFTER)
        store().release(ALICE, "deploy", "ok", to_release=f"r{number}")
    with (state_dir / "audit.jsonl").open("a") as handle:
        handle.write("not json\n")
    tail = store().query(STALE_AFTER, 3)
    assert [e.get("to_release") for e in tail["audit"][:2]] == ["r23", "r24"]
    assert tail["audit"][2] == {"unparsed": "not json"}
    assert "deploy - -> r24: ok (0 s)" in tail["audit_lines"][1], tail["audit_lines"]


def test_unlock_releases_anyones_lock_and_is_audited(store: Factory, state_dir: Path) -> None:
    store().acquire(BOB, "deploy", STALE_AFTER)
    outcome = store().unlock(ALICE)
    assert record(state_dir) is None, "unlock left the record"
    assert "deploy by bob@ctl-b" in outcome["msg"]
    (entry,) = audit(state_dir)
    assert (entry["action"], entry["controller_user"]) == ("unlock", "alice")
    assert "released the lock of deploy by bob@ctl-b" in entry["detail"]


def test_unlock_says_whether_the_holder_was_alive(store: Factory, state_dir: Path) -> None:
    store().acquire(ALICE, "deploy", STALE_AFTER)
    alive = {"id": ALICE["id"], "state": "alive", "reason": "pid 1001 still runs on ctl-a"}
    store().unlock(ALICE_AGAIN, alive)
    store().acquire(BOB, "deploy", STALE_AFTER)
    unknown = {
        "id": BOB["id"],
        "state": "unknown",
        "reason": "held from another controller (ctl-b)",
    }
    store().unlock(ALICE_AGAIN, unknown)
    details = [entry["detail"] for entry in audit(state_dir)]
    assert details[0].endswith("(that run was still alive: pid 1001 still runs on ctl-a)"), details
    assert details[1].endswith("(held from another controller (ctl-b))"), details


def test_damaged_record_is_refused_with_one_line_and_unlock_removes_it(
    store: Factory, state_dir: Path
) -> None:
    state_dir.mkdir(parents=True)
    (state_dir / "deploy-lock.json").write_text("{half a rec")
    with pytest.raises(lock.LockError) as refused:
        store().acquire(ALICE, "deploy", STALE_AFTER)
    assert "is not a lock record" in str(refused.value) and "\n" not in str(refused.value)
    store().unlock(ALICE)
    assert record(state_dir) is None


def test_bad_action_is_refused_naming_the_variable(store: Factory) -> None:
    with pytest.raises(lock.LockError, match="deploy_lock_action must be a lowercase word"):
        store().acquire(ALICE, "Deploy Now", STALE_AFTER)


# --- check mode ---


def test_check_mode_writes_nothing(store: Factory, state_dir: Path, clock: Clock) -> None:
    dry = store(check_mode=True)
    assert dry.acquire(ALICE, "deploy", STALE_AFTER)["acquired"], (
        "check mode must report it would take it"
    )
    dry.heartbeat(ALICE)
    dry.release(ALICE, "deploy", "ok")
    assert snapshot(state_dir) is None, "check mode created the state directory"

    store().acquire(BOB, "deploy", STALE_AFTER)
    before = snapshot(state_dir)
    clock.now += STALE_AFTER + 1
    assert store(check_mode=True).acquire(ALICE, "deploy", STALE_AFTER)["acquired"]
    store(check_mode=True).unlock(ALICE)
    assert snapshot(state_dir) == before, "check mode changed the lock or the audit log"


def test_check_mode_still_refuses_a_live_lock(store: Factory) -> None:
    store().acquire(BOB, "deploy", STALE_AFTER)
    outcome = store(check_mode=True).acquire(ALICE, "deploy", STALE_AFTER)
    assert not outcome["acquired"], "a dry run did not tell the operator the host is locked"
    assert "deploy by bob@ctl-b" in outcome["msg"]


# --- two runs racing ---


def _race(state_dir: str, index: int, barrier: Any, results: Any) -> None:
    contender = run(f"user{index}", f"ctl-{index}", pid=5000 + index)
    store = lock.LockStore(state_dir, os.path.join(state_dir, "audit.jsonl"))
    barrier.wait()
    results.put((index, store.acquire(contender, "deploy", STALE_AFTER)["acquired"]))


@pytest.mark.parametrize("attempt", range(5))
def test_concurrent_acquire_exactly_one_wins(tmp_path: Path, attempt: int) -> None:
    contenders = 6
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(contenders), context.Queue()
    workers = [
        context.Process(target=_race, args=(str(tmp_path / "state"), i, barrier, results))
        for i in range(contenders)
    ]
    for worker in workers:
        worker.start()
    outcomes = dict(results.get(timeout=30) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
    winners = [index for index, acquired in outcomes.items() if acquired]
    assert len(winners) == 1, f"{len(winners)} of {contenders} racing runs got the lock"
    assert holder_id(tmp_path / "state").startswith(f"ctl-{winners[0]}:"), (
        "the record is not the winner's"
    )


# --- through Ansible's module interface ---


def run_module(args: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Run the module file the way Ansible does with a file of arguments."""
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    done = subprocess.run(
        [sys.executable, str(REPO / "roles/deploy_lock/library/deploy_lock.py"), str(args_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    return dict(json.loads(done.stdout))


def test_module_takes_the_lock_and_check_mode_does_not(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    common = {
        "state_dir": str(state_dir),
        "audit_log": str(state_dir / "audit.jsonl"),
        "run": ALICE,
    }
    dry = run_module({**common, "state": "acquired", "_ansible_check_mode": True}, tmp_path)
    assert dry["acquired"] and not state_dir.exists(), f"check mode wrote the lock: {dry}"
    real = run_module({**common, "state": "acquired"}, tmp_path)
    assert real["acquired"] and holder_id(state_dir) == ALICE["id"], real


def test_module_refuses_without_failing_so_the_role_can_ask_the_controller(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    common = {"state_dir": str(state_dir), "audit_log": str(state_dir / "audit.jsonl")}
    run_module({**common, "state": "acquired", "run": BOB}, tmp_path)
    refused = run_module({**common, "state": "acquired", "run": ALICE, "host": "web-1"}, tmp_path)
    assert not refused.get("failed") and not refused["acquired"], refused
    assert refused["msg"].startswith("web-1 is locked: deploy by bob@ctl-b"), refused["msg"]
