"""The fleet's hosts and what the checks read on them (molecule/fleet/molecule.yml)."""

from __future__ import annotations

import json
import shlex
from typing import Any
from urllib.parse import urlencode

from runs import REPO, SCENARIO, http, sh

CANARY, SECOND, DATABASE = "nica-fleet-web-1", "nica-fleet-web-2", "nica-fleet-db"
BACKENDS = (CANARY, SECOND)
FLEET = (CANARY, SECOND, DATABASE)
ADDRESS = {CANARY: "10.99.83.11", SECOND: "10.99.83.12", DATABASE: "10.99.83.20"}
# Debian's docker-registry on the database host (prepare.yml); the next release goes
# through it (backend_image_registry), converge's through the controller as an archive.
REGISTRY = f"{ADDRESS[DATABASE]}:5000"
IMAGE_CACHE = REPO / "build" / "image-cache"  # backend_image_cache_dir's default
# The pre/post hook of the rollouts (hooks/record_call.yml), where a load balancer's
# drain and undrain calls would go.
HOOK = str(SCENARIO / "hooks" / "record_call.yml")

# Everything a run could change on a host: its record, releases, containers (name, id,
# up or not, since when) and images.
FINGERPRINT = (
    "cat /opt/nica/state/release.json 2>/dev/null; ls /opt/nica/releases 2>/dev/null;"
    " docker ps -aq | xargs -r docker inspect"
    " -f '{{.Name}} {{.Id}} {{.State.Status}} {{.State.StartedAt}}' | sort;"
    " docker image ls -q --no-trunc | sort"
)


def fingerprints(hosts: dict[str, Any]) -> dict[str, str]:
    """Each host's FINGERPRINT."""
    return {name: str(hosts[name].run(FINGERPRINT).stdout) for name in FLEET}


def image_id(host: Any, image: str) -> str:
    return sh(host, f"docker image inspect -f '{{{{.Id}}}}' {shlex.quote(image)}").strip()


def hook_args(run: str, record: str) -> list[str]:
    """-e for deploy.yml or rollback.yml: HOOK as both hooks, each call a line
    "<run> <host> <phase> <release>" in `record` on the controller."""
    return [
        *("-e", f"backend_rollout_pre_hook={HOOK}"),
        *("-e", f"backend_rollout_post_hook={HOOK}"),
        *("-e", f"fleet_hook_record={record}"),
        *("-e", f"fleet_hook_run={run}"),
    ]


def store(host: Any, title: str, text: str) -> int:
    """POST /v1/documents through a backend host's published port; the status."""
    status, _ = http(host, "http://127.0.0.1:8000/v1/documents", {"title": title, "text": text})
    return status


def search(host: Any, query: str, k: int = 5) -> list[str]:
    """GET /v1/search through a backend host's published port: the titles found, or one
    line saying what answered instead (for a failure message)."""
    url = "http://127.0.0.1:8000/v1/search?" + urlencode({"q": query, "k": k})
    status, body = http(host, url)
    if status != 200 or not isinstance(body, dict):
        return [f"(the search answered {status}: {body})"]
    return [hit["title"] for hit in body["data"]]


def audit(host: Any) -> list[dict[str, Any]]:
    """The host's audit log (roles/deploy_lock), oldest first."""
    lines = sh(host, "cat /opt/nica/state/audit.jsonl").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
