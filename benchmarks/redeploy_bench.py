#!/usr/bin/env python3
"""Redeploy figures: what a client sees while an operator redeploys or rolls back.

For each case it starts testing/load/steady_client.py against the demo host's published
port (127.0.0.1:NICA_DEMO_PORT, loopback only, bounded), runs the operator's command,
then prints wall time, requests sent and failed, and the longest stretch without a
successful response. The anchor, in the same run, is the swap this project did before
blue/green: the serving container recreated in place (stop, then start).

Run by benchmarks/redeploy_figures.sh (which brings the demo host up first); prints a
table, then the same figures as one JSON object.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIENT = REPO / "testing" / "load" / "steady_client.py"
NEXT = REPO / "build" / "next-releases" / "bench-next"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def inventory() -> str:
    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", str(REPO / "build" / "molecule"))
    return str(Path(ephemeral) / "inventory")


def playbook(*args: str) -> list[str]:
    return ["ansible-playbook", "-i", inventory(), *args]


def host_shell(command: str) -> list[str]:
    host = os.environ.get("NICA_TEST_HOST", "nica-debian13-host")
    return ["docker", "exec", host, "bash", "-c", command]


def serving_slot() -> str:
    out = subprocess.run(
        host_shell("cat /opt/nica/state/release.json"), check=True, capture_output=True, text=True
    ).stdout
    return str(json.loads(out)["slot"])


def next_release_checkout() -> Path:
    """A copy of the checkout with one more (backward-compatible) migration: new code."""
    subprocess.run(["rm", "-rf", str(NEXT)], check=True)
    NEXT.mkdir(parents=True)
    tar = "tar -C {src} --exclude=./build --exclude=./.venv --exclude=./.git -c . | tar -C {dst} -x"
    subprocess.run(
        [
            "bash",
            "-c",
            "set -o pipefail; "
            + tar.format(src=shlex.quote(str(REPO)), dst=shlex.quote(str(NEXT))),
        ],
        check=True,
    )
    (NEXT / "build").symlink_to(REPO / "build")
    for migration in (REPO / "testing" / "next_release").glob("0004_*.py"):
        (NEXT / "backend" / "migrations" / "versions" / migration.name).write_bytes(
            migration.read_bytes()
        )
    return NEXT


def under_load(name: str, command: list[str], port: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        out, stop = Path(tmp) / "client.json", Path(tmp) / "stop"
        client = subprocess.Popen(
            [
                sys.executable,
                str(CLIENT),
                "--url",
                f"http://127.0.0.1:{port}",
                "--model",
                MODEL,
                "--out",
                str(out),
                "--stop-file",
                str(stop),
                "--threads",
                "2",
                "--max-requests",
                "40000",
                "--max-seconds",
                "900",
            ]
        )
        time.sleep(2)
        started = time.monotonic()
        run = subprocess.run(command, capture_output=True, text=True)
        wall = time.monotonic() - started
        time.sleep(2)
        stop.touch()
        client.wait(timeout=120)
        seen = json.loads(out.read_text())
    if run.returncode != 0:
        tail = (run.stdout + run.stderr).strip().splitlines()[-5:]
        print(f"error: {name} exited {run.returncode}: {' | '.join(tail)}", file=sys.stderr)
    return {
        "case": name,
        "rc": run.returncode,
        "wall_s": round(wall, 1),
        "sent": seen["sent"],
        "failed": seen["failed"],
        "longest_gap_s": seen["longest_gap_s"],
        "failures": seen["failures"][:3],
    }


def main() -> int:
    port = int(os.environ.get("NICA_DEMO_PORT", "18000"))
    converge = str(REPO / "molecule" / "default" / "converge.yml")
    mark = time.strftime("%Y%m%dT%H%M%S")
    next_dir = next_release_checkout()
    cases = [
        ("no-change deploy", playbook(converge)),
        (
            "configuration change",
            playbook("-e", json.dumps({"backend_extra_env": {"NICA_BENCH": mark}}), converge),
        ),
        ("code change (+ migration)", playbook("-e", f"backend_project_dir={next_dir}", converge)),
        ("rollback", playbook(str(REPO / "playbooks" / "rollback.yml"))),
    ]
    results = [under_load(name, command, port) for name, command in cases]
    slot = serving_slot()
    recreate = "docker compose up -d --wait --force-recreate --no-deps"
    anchor = host_shell(f"cd /opt/nica/compose && {recreate} backend-{slot}")
    results.append(under_load("anchor: recreate in place", anchor, port))
    results.append(under_load("settings back (deploy.yml)", playbook(converge), port))

    print(f"{'case':<30} {'wall s':>7} {'sent':>6} {'failed':>6} {'longest gap s':>14}")
    for row in results:
        print(
            f"{row['case']:<30} {row['wall_s']:>7} {row['sent']:>6} {row['failed']:>6} "
            f"{row['longest_gap_s']:>14}"
        )
    print(json.dumps({"redeploy": results}))
    return 1 if any(row["rc"] != 0 for row in results) else 0


if __name__ == "__main__":
    sys.exit(main())
