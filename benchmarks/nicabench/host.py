"""The demo host (molecule's default scenario): run commands in it, time playbooks against it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from .options import REPO

POSTGRES = "nica-postgres-1"


class HostError(RuntimeError):
    """A command on the demo host failed; the message says which and its last output."""


def inventory() -> Path:
    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", str(REPO / "build" / "molecule"))
    return Path(ephemeral) / "inventory"


def run(
    command: list[str],
    what: str,
    *,
    stdin: bytes | None = None,
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run a command on this machine; its stdout, or HostError naming `what` and its last lines.
    With `log`, its output goes to that file as it runs (and '' is returned); `env` replaces
    the environment."""
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            code = subprocess.run(
                command, input=stdin, stdout=out, stderr=subprocess.STDOUT, check=False, env=env
            ).returncode
        text = log.read_text(errors="replace") if code != 0 else ""
        where = f", see {log}"
    else:
        result = subprocess.run(command, input=stdin, capture_output=True, check=False, env=env)
        code, where = result.returncode, ""
        text = result.stdout.decode(errors="replace")
        if code == 0:
            return text
        text += result.stderr.decode(errors="replace")
    if code != 0:
        tail = " | ".join(text.strip().splitlines()[-4:])
        raise HostError(f"{what} exited {code}{where}: {tail}")
    return ""


def in_host(host: str, script: str, what: str, *, stdin: bytes | None = None) -> str:
    """A bash script run inside the demo host container."""
    return run(["docker", "exec", "-i", host, "bash", "-c", script], what, stdin=stdin)


def psql(host: str, sql: str, what: str, *, stdin: bytes | None = None) -> str:
    """SQL in the stack's database, as its owner (unaligned, tuples only); `sql` may COPY FROM
    STDIN, `stdin` then carries the rows."""
    quoted = "'" + sql.replace("'", "'\"'\"'") + "'"
    return in_host(host, _in_postgres('-c "$0"') + " " + quoted, what, stdin=stdin)


def psql_script(host: str, script: str, what: str) -> str:
    """A script of SQL statements (psql reads it from stdin: no length limit of an argument)
    in the stack's database, as its owner (unaligned, tuples only)."""
    return in_host(host, _in_postgres("-f -"), what, stdin=script.encode())


def _in_postgres(arguments: str) -> str:
    """psql in the stack's postgres container, over its socket, as the database's owner."""
    return (
        f"docker exec -i {POSTGRES} sh -c "
        '\'psql -h /var/run/postgresql -v ON_ERROR_STOP=1 -qAt -U "$POSTGRES_USER" '
        f'-d "$POSTGRES_DB" {arguments}\''
    )


def timed_playbook(args: list[str], what: str, log_dir: Path) -> float:
    """Wall seconds of `ansible-playbook -i <inventory> ARGS`, or HostError."""
    started = time.monotonic()
    run(
        ["ansible-playbook", "-i", str(inventory()), *args],
        what,
        log=log_dir / f"benchmark-{what.replace(' ', '-')}.log",
    )
    return time.monotonic() - started


def molecule(*args: str) -> None:
    run(["molecule", *args], f"molecule {' '.join(args)}")


def release(host: str) -> dict[str, object]:
    """The serving release's record (state/release.json)."""
    record: dict[str, object] = json.loads(
        in_host(host, "cat /opt/nica/state/release.json", "reading the release record")
    )
    return record


def say(text: str) -> None:
    print(f"==> {text}", file=sys.stderr, flush=True)
