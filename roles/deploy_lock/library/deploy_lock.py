#!/usr/bin/python
"""The per-host deploy lock and the append-only audit log (roles/deploy_lock).

Why a module of its own: taking the lock is a compare-and-set on the host (read the
record, decide whether it may be taken, write the new one) that two runs must never
interleave, and the lock outlives the task that takes it. Ansible's file modules
(copy, template, lineinfile) write a file atomically but cannot read, decide and write
under one lock; ansible-core, community.general and ansible.posix have no lock module;
`flock(1)` in a shell task could serialise the step but not build, compare and rename
the JSON record or append the audit line safely. Here every change happens under an
exclusive flock(2) of a file that is never replaced, the record is written to a
temporary file and renamed over the old one (readers never see half a record), and
the audit log is only ever opened with O_APPEND.

The logic is in `LockStore` (no Ansible in it, unit-tested in
tests/roles/test_deploy_lock.py); `main()` only maps the module's arguments onto it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: deploy_lock
short_description: Take, renew, release or show the host's deploy lock; append to its audit log
description:
  - The lock is a JSON record (deploy-lock.json) in I(state_dir), changed only under an
    exclusive flock of .deploy-lock.flock there and written by rename.
  - The audit log is JSON lines, opened only with O_APPEND, mode 0640.
  - Whether a holder from the same controller still runs is decided on the controller
    (lookup deploy_lock_controller) and passed in as I(holder_check).
options:
  state:
    description: acquired, heartbeat, released, unlocked (a forced release) or query (read-only).
    type: str
    choices: [acquired, heartbeat, released, unlocked, query]
    default: query
  state_dir:
    description: Directory of the lock record.
    type: path
    required: true
  audit_log:
    description: The audit log (JSON lines).
    type: path
    required: true
  host:
    description: The host's name in messages.
    type: str
    default: this host
  run:
    description: This run, from lookup('deploy_lock_controller', 'run').
    type: dict
  action:
    description: What the run does (deploy, rollback, restore, key-rotation).
    type: str
    default: deploy
  stale_after:
    description: Seconds without a heartbeat after which another controller's lock is stale.
    type: int
    default: 3600
  holder_check:
    description: The controller's verdict on a holder (id, state, reason).
    type: dict
  result:
    description: How the action ended (ok, failed, ...).
    type: str
    default: ok
  from_release:
    description: The release before the action.
    type: str
    default: ""
  to_release:
    description: The release after the action.
    type: str
    default: ""
  since:
    description: When this run took the lock (UTC ISO), for the duration.
    type: str
    default: ""
  audit_entries:
    description: How many of the last audit entries query returns.
    type: int
    default: 10
author: nica
"""

EXAMPLES = r"""
- name: Take the deploy lock
  deploy_lock:
    state: acquired
    state_dir: /opt/nica/state
    audit_log: /opt/nica/state/audit.jsonl
    run: "{{ lookup('deploy_lock_controller', 'run') }}"
    action: deploy
"""

RETURN = r"""
acquired:
  description: Whether this run holds the lock now (would hold it, in check mode).
  type: bool
  returned: state=acquired
needs_check:
  description: The holder ran from this controller; ask the controller whether it still runs.
  type: bool
  returned: state=acquired
holder:
  description: The record of the run that holds the lock, when it is not this one.
  type: dict
  returned: always
lock:
  description: The lock record after the call (null when free).
  type: dict
  returned: always
msg:
  description: One line saying what happened.
  type: str
  returned: always
audit:
  description: The last audit entries, oldest first.
  type: list
  returned: state=query
audit_lines:
  description: The same, one line each.
  type: list
  returned: state=query
"""

RECORD_NAME = "deploy-lock.json"
FLOCK_NAME = ".deploy-lock.flock"
AUDIT_MODE = 0o640
RECORD_MODE = 0o640
STATE_DIR_MODE = 0o750
FLOCK_TIMEOUT = 10.0  # seconds; the critical section takes milliseconds
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
WORD = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")  # deploy, key-rotation, ok, failed
RUN_FIELDS = ("id", "controller_user", "controller_host", "pid")
# What makes two runs come from the same controller: the same host name, boot and
# PID namespace. Then a holder's PID can be looked up there.
CONTROLLER_FIELDS = ("controller_host", "boot_id", "pidns")
SEE_IT = "ansible-playbook playbooks/lock.yml --limit {host}"


class LockError(Exception):
    """A one-line reason the lock cannot be taken, renewed or read."""


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime(ISO_FORMAT)


def parse_iso(text: str) -> float:
    return datetime.strptime(text, ISO_FORMAT).replace(tzinfo=UTC).timestamp()


def holder_line(record: Mapping[str, Any]) -> str:
    """`deploy by alice@ctl-1 (pid 1234) since 2026-11-30T03:12:05Z`."""
    return (
        f"{record.get('action', '?')} by {record.get('controller_user', '?')}"
        f"@{record.get('controller_host', '?')} (pid {record.get('pid', '?')})"
        f" since {record.get('since', '?')}"
    )


def same_controller(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two runs come from one controller (on Linux; elsewhere never)."""
    return all(a.get(key) and a.get(key) == b.get(key) for key in CONTROLLER_FIELDS)


def audit_line(entry: Mapping[str, Any]) -> str:
    """One audit entry as a line for an operator."""
    if "unparsed" in entry:
        return f"(not JSON) {entry['unparsed']}"
    releases = ""
    if entry.get("from_release") or entry.get("to_release"):
        releases = f" {entry.get('from_release') or '-'} -> {entry.get('to_release') or '-'}"
    detail = f"; {entry['detail']}" if entry.get("detail") else ""
    return (
        f"{entry.get('time', '?')} {entry.get('controller_user', '?')}"
        f"@{entry.get('controller_host', '?')} {entry.get('action', '?')}{releases}:"
        f" {entry.get('result', '?')} ({entry.get('duration_s', '?')} s){detail}"
    )


def check_word(name: str, value: str) -> None:
    if not WORD.match(value):
        raise LockError(
            f"{name} must be a lowercase word or words joined by '-' "
            f"(e.g. deploy, key-rotation, ok, failed); got {value!r}"
        )


def check_run(run: Mapping[str, Any] | None) -> Mapping[str, Any]:
    missing = [key for key in RUN_FIELDS if not run or run.get(key) in (None, "")]
    if missing:
        raise LockError(
            "run must be lookup('deploy_lock_controller', 'run') of this run; "
            f"it lacks {', '.join(missing)}"
        )
    return run or {}


class LockStore:
    """The lock record and the audit log in one state directory of the host."""

    def __init__(
        self,
        state_dir: str,
        audit_log: str,
        *,
        host: str = "this host",
        check_mode: bool = False,
        clock: Callable[[], float] = time.time,
        flock_timeout: float = FLOCK_TIMEOUT,
    ) -> None:
        self.state_dir = state_dir
        self.audit_log = audit_log
        self.host = host
        self.check_mode = check_mode
        self.clock = clock
        self.flock_timeout = flock_timeout
        self.record_path = os.path.join(state_dir, RECORD_NAME)
        self.flock_path = os.path.join(state_dir, FLOCK_NAME)
        self.warnings: list[str] = []

    # --- files ---

    def read(self) -> dict[str, Any] | None:
        """The lock record, or None when the lock is free."""
        try:
            with open(self.record_path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            return None
        try:
            record = json.loads(text)
        except ValueError as error:
            record, problem = None, f"not JSON ({error})"
        else:
            problem = "" if isinstance(record, dict) else "not a JSON object"
        if isinstance(record, dict):
            missing = [
                key for key in (*RUN_FIELDS, "action", "since", "heartbeat") if key not in record
            ]
            problem = f"missing {', '.join(missing)}" if missing else ""
        if problem:
            raise LockError(
                f"{self.record_path} on {self.host} is not a lock record ({problem}); look at "
                f"it, then remove it with {SEE_IT.format(host=self.host)} "
                "-e deploy_lock_force_release=true"
            )
        return dict(record)

    def _make_state_dir(self) -> None:
        if os.path.isdir(self.state_dir):
            return
        parent = os.path.dirname(self.state_dir.rstrip("/"))
        os.makedirs(parent, mode=0o755, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(self.state_dir, STATE_DIR_MODE)
            os.chmod(self.state_dir, STATE_DIR_MODE)  # whatever the umask

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the flock that serialises every change (nothing to hold in check mode)."""
        if self.check_mode:
            yield
            return
        self._make_state_dir()
        fd = os.open(self.flock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            deadline = time.monotonic() + self.flock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LockError(
                            f"{self.flock_path} on {self.host} stayed locked for "
                            f"{self.flock_timeout:.0f} s: a deploy_lock module there is stuck"
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # releases the flock

    def _fsync_dir(self) -> None:
        fd = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write_record(self, record: Mapping[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.state_dir, prefix=".deploy-lock.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(record, handle, indent=2, sort_keys=True)
                handle.write("\n")
                handle.flush()
                os.fchmod(handle.fileno(), RECORD_MODE)
                os.fsync(handle.fileno())
            os.replace(tmp, self.record_path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._fsync_dir()

    def _remove_record(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.record_path)
        self._fsync_dir()

    def append_audit(self, entry: Mapping[str, Any]) -> None:
        """Add one line to the audit log; never rewrites or truncates it."""
        if self.check_mode:
            return
        os.makedirs(os.path.dirname(self.audit_log), mode=STATE_DIR_MODE, exist_ok=True)
        line = (json.dumps(entry, sort_keys=True) + "\n").encode()
        fd = os.open(
            self.audit_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, AUDIT_MODE
        )
        try:
            if os.fstat(fd).st_mode & 0o7777 != AUDIT_MODE:
                os.fchmod(fd, AUDIT_MODE)
            written = 0
            while written < len(line):
                written += os.write(fd, line[written:])
            os.fsync(fd)
        finally:
            os.close(fd)

    def audit_tail(self, count: int) -> list[dict[str, Any]]:
        """The last `count` audit entries, oldest first."""
        if count <= 0:
            return []
        try:
            handle = open(self.audit_log, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return []
        with handle:
            end = handle.seek(0, os.SEEK_END)
            data, position = b"", end
            while position > 0 and data.count(b"\n") <= count:
                step = min(65536, position)
                position -= step
                handle.seek(position)
                data = handle.read(step) + data
        lines = [line for line in data.decode(errors="replace").splitlines() if line.strip()]
        entries: list[dict[str, Any]] = []
        for line in lines[-count:]:
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            entries.append(entry if isinstance(entry, dict) else {"unparsed": line})
        return entries

    # --- records ---

    def _new_record(self, run: Mapping[str, Any], action: str, now: float) -> dict[str, Any]:
        record = {key: run.get(key) for key in (*RUN_FIELDS, "pid_start", "boot_id", "pidns")}
        record.update(action=action, since=iso(now), heartbeat=iso(now))
        return record

    def _entry(
        self,
        run: Mapping[str, Any],
        action: str,
        result: str,
        duration: float,
        *,
        from_release: str = "",
        to_release: str = "",
        detail: str = "",
    ) -> dict[str, Any]:
        return {
            "time": iso(self.clock()),
            "controller_user": run.get("controller_user"),
            "controller_host": run.get("controller_host"),
            "action": action,
            "from_release": from_release,
            "to_release": to_release,
            "result": result,
            "duration_s": max(0, round(duration)),
            "run": run.get("id"),
            "detail": detail,
        }

    def _since(self, record: Mapping[str, Any], now: float) -> float:
        try:
            return now - parse_iso(str(record.get("since")))
        except ValueError:
            return 0.0

    def lease(self, record: Mapping[str, Any], stale_after: int, now: float) -> dict[str, Any]:
        """How old the holder's heartbeat is, and when it counts as stale."""
        try:
            beat = parse_iso(str(record["heartbeat"]))
        except ValueError:
            beat = 0.0
        age = max(0, round(now - beat))
        return {
            "heartbeat_age_s": age,
            "stale_at": iso(beat + stale_after),
            "expired": age > stale_after,
            "line": f"last heartbeat {record.get('heartbeat')} ({age} s ago)",
        }

    # --- operations ---

    def acquire(
        self,
        run: Mapping[str, Any],
        action: str,
        stale_after: int,
        holder_check: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Take the lock, take it again (the same run), take it over, or refuse."""
        run = check_run(run)
        check_word("deploy_lock_action", action)
        with self.exclusive():
            now = self.clock()
            record = self.read()
            if record is None:
                return self._take(run, action, now, "took the deploy lock")
            if record["id"] == run["id"]:
                renewed = dict(record, heartbeat=iso(now))
                if not self.check_mode:
                    self._write_record(renewed)
                return self._outcome(
                    True, renewed, f"{self.host}: this run already holds the deploy lock"
                )
            lease = self.lease(record, stale_after, now)
            check = (
                holder_check if holder_check and holder_check.get("id") == record["id"] else None
            )
            if check is None and same_controller(record, run):
                # Only the controller can tell whether that process still runs.
                return self._refusal(record, lease, "held from this controller", needs_check=True)
            if check and check.get("state") == "gone":
                return self._take_over(run, action, now, record, str(check.get("reason")))
            if check and check.get("state") == "alive":
                return self._refusal(record, lease, f"that run is alive: {check.get('reason')}")
            if lease["expired"]:
                reason = (
                    f"no heartbeat for {lease['heartbeat_age_s']} s, more than "
                    f"deploy_lock_stale_after ({stale_after} s)"
                )
                return self._take_over(run, action, now, record, reason)
            where = (
                check.get("reason")
                if check and check.get("reason")
                else (f"it is held from another controller ({record.get('controller_host')})")
            )
            return self._refusal(
                record,
                lease,
                f"{where}, so it counts as gone only after {stale_after} s without a heartbeat "
                f"(at {lease['stale_at']})",
            )

    def _outcome(
        self, acquired: bool, lock: Mapping[str, Any] | None, msg: str, **more: Any
    ) -> dict[str, Any]:
        result: dict[str, Any] = {
            "acquired": acquired,
            "needs_check": False,
            "holder": None,
            "took_over": None,
            "lock": lock,
            "msg": msg,
            "changed": False,
        }
        result.update(more)
        return result

    def _take(self, run: Mapping[str, Any], action: str, now: float, msg: str) -> dict[str, Any]:
        record = self._new_record(run, action, now)
        if not self.check_mode:
            self._write_record(record)
        return self._outcome(True, record, f"{self.host}: {msg} for {action}", changed=True)

    def _take_over(
        self,
        run: Mapping[str, Any],
        action: str,
        now: float,
        record: Mapping[str, Any],
        reason: str,
    ) -> dict[str, Any]:
        verb = "Would take" if self.check_mode else "Took"
        line = (
            f"{verb} over the deploy lock of {self.host}: {holder_line(record)} is gone: {reason}"
        )
        self.warnings.append(line)
        self.append_audit(
            self._entry(
                run,
                "takeover",
                "ok",
                self._since(record, now),
                detail=f"took over the lock of {holder_line(record)}: {reason}",
            )
        )
        outcome = self._take(run, action, now, "took over the deploy lock")
        outcome.update(msg=line, took_over={"holder": dict(record), "reason": reason})
        return outcome

    def _refusal(
        self,
        record: Mapping[str, Any],
        lease: Mapping[str, Any],
        why: str,
        *,
        needs_check: bool = False,
    ) -> dict[str, Any]:
        see = SEE_IT.format(host=self.host)
        msg = (
            f"{self.host} is locked: {holder_line(record)}, {lease['line']}; {why}. "
            f"See it with `{see}`, add `-e deploy_lock_force_release=true` to release it once "
            "that run is gone, or wait for it with `-e deploy_lock_wait=SECONDS`."
        )
        return self._outcome(False, record, msg, holder=dict(record), needs_check=needs_check)

    def heartbeat(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """Renew this run's lock; fail if the lock is no longer this run's."""
        run = check_run(run)
        if self.check_mode:  # nothing was taken in check mode, so nothing to renew
            return self._outcome(True, self.read(), f"{self.host}: would renew the deploy lock")
        with self.exclusive():
            record = self.read()
            if record is None or record["id"] != run["id"]:
                now_held = "it is free" if record is None else f"now {holder_line(record)}"
                raise LockError(
                    f"{self.host}: this run no longer holds the deploy lock ({now_held}); "
                    "stopping so that two runs do not overlap"
                )
            record = dict(record, heartbeat=iso(self.clock()))
            self._write_record(record)
        return self._outcome(True, record, f"{self.host}: renewed the deploy lock", changed=True)

    def release(
        self,
        run: Mapping[str, Any],
        action: str,
        result: str,
        *,
        from_release: str = "",
        to_release: str = "",
        since: str = "",
    ) -> dict[str, Any]:
        """Record the action in the audit log and free the lock if this run holds it."""
        run = check_run(run)
        check_word("deploy_lock_action", action)
        check_word("deploy_lock_result", result)
        for name, value in (
            ("deploy_lock_from_release", from_release),
            ("deploy_lock_to_release", to_release),
        ):
            if "\n" in value or "\r" in value:
                raise LockError(f"{name} must be one line; got {value!r}")
        with self.exclusive():
            now = self.clock()
            record = self.read()
            ours = record is not None and record["id"] == run["id"]
            detail = ""
            if self.check_mode:
                pass  # nothing was taken in check mode: nothing to compare
            elif record is None:
                detail = "the lock had been released before (playbooks/lock.yml)"
            elif not ours:
                detail = f"the lock had been taken over: now {holder_line(record)}"
            start = since or (str(record.get("since")) if ours and record else "")
            duration = self._since({"since": start}, now) if start else 0.0
            entry = self._entry(
                run,
                str(record["action"]) if ours and record else action,
                result,
                duration,
                from_release=from_release,
                to_release=to_release,
                detail=detail,
            )
            self.append_audit(entry)
            if ours and not self.check_mode:
                self._remove_record()
        done = f"{entry['action']} {result} in the audit log"
        msg = (
            f"{self.host}: would record {done} and release the deploy lock"
            if self.check_mode
            else f"{self.host}: recorded {done} and released the deploy lock"
        ) + (f" ({detail})" if detail else "")
        if detail:
            self.warnings.append(msg)
        return self._outcome(False, None, msg, changed=True, entry=entry)

    def unlock(
        self, run: Mapping[str, Any], holder_check: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Release the lock whoever holds it (playbooks/lock.yml), audited."""
        run = check_run(run)
        with self.exclusive():
            now = self.clock()
            try:
                record = self.read()
                described = holder_line(record) if record else ""
            except LockError:  # a damaged record: remove it all the same
                record, described = {"since": ""}, f"a damaged lock record ({self.record_path})"
            if record is None:
                return self._outcome(
                    False, None, f"{self.host}: the deploy lock is free; nothing to release"
                )
            state = ""
            if holder_check and holder_check.get("id") == record.get("id"):
                verdict = {"alive": "that run was still alive: ", "gone": "that run was gone: "}
                said = verdict.get(str(holder_check.get("state")), "")
                state = f" ({said}{holder_check.get('reason')})"
            detail = f"released the lock of {described}{state}"
            self.append_audit(
                self._entry(run, "unlock", "ok", self._since(record, now), detail=detail)
            )
            if not self.check_mode:
                self._remove_record()
        verb = "Would release" if self.check_mode else "Released"
        return self._outcome(
            False, None, f"{verb} the deploy lock of {self.host}: {described}{state}", changed=True
        )

    def query(self, stale_after: int, audit_entries: int) -> dict[str, Any]:
        """The lock (with its lease) and the last audit entries; read-only."""
        now = self.clock()
        error = ""
        try:
            record = self.read()
        except LockError as problem:
            record, error = None, str(problem)
        audit = self.audit_tail(audit_entries)
        return {
            "changed": False,
            "lock": record,
            "holder": record,
            "holder_line": holder_line(record) if record else "",
            "lease": self.lease(record, stale_after, now) if record else None,
            "error": error,
            "audit": audit,
            "audit_lines": [audit_line(entry) for entry in audit],
            "msg": error
            or (f"{self.host}: held: {holder_line(record)}" if record else f"{self.host}: free"),
        }


def run_module() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {
                "type": "str",
                "default": "query",
                "choices": ["acquired", "heartbeat", "released", "unlocked", "query"],
            },
            "state_dir": {"type": "path", "required": True},
            "audit_log": {"type": "path", "required": True},
            "host": {"type": "str", "default": "this host"},
            "run": {"type": "dict"},
            "action": {"type": "str", "default": "deploy"},
            "stale_after": {"type": "int", "default": 3600},
            "holder_check": {"type": "dict"},
            "result": {"type": "str", "default": "ok"},
            "from_release": {"type": "str", "default": ""},
            "to_release": {"type": "str", "default": ""},
            "since": {"type": "str", "default": ""},
            "audit_entries": {"type": "int", "default": 10},
        },
        required_if=[
            ("state", name, ["run"]) for name in ("acquired", "heartbeat", "released", "unlocked")
        ],
        supports_check_mode=True,
    )
    params = module.params
    store = LockStore(
        params["state_dir"], params["audit_log"], host=params["host"], check_mode=module.check_mode
    )
    try:
        state = params["state"]
        if state == "acquired":
            outcome = store.acquire(
                params["run"], params["action"], params["stale_after"], params["holder_check"]
            )
        elif state == "heartbeat":
            outcome = store.heartbeat(params["run"])
        elif state == "released":
            outcome = store.release(
                params["run"],
                params["action"],
                params["result"],
                from_release=params["from_release"],
                to_release=params["to_release"],
                since=params["since"],
            )
        elif state == "unlocked":
            outcome = store.unlock(params["run"], params["holder_check"])
        else:
            outcome = store.query(params["stale_after"], params["audit_entries"])
    except (LockError, OSError) as error:
        module.fail_json(msg=str(error))
    for warning in store.warnings:
        module.warn(warning)
    module.exit_json(**outcome)


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
