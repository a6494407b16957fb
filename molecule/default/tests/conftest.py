"""Shared helpers for the testinfra checks of the deployed host.

The checks run on the controller and look at the Debian 13 host through Ansible's
docker connection: `host.run` executes there, so `docker ...` talks to the host's
own engine. Failure messages never include a secret: tokens are compared by hash.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
REPORTS = REPO / "build" / "reports"
COMPOSE_DIR = "/opt/nica/compose"
SECRETS_DIR = f"{COMPOSE_DIR}/secrets"
HUB_LOG = "/var/log/fake-hub/requests.jsonl"
APP_UID = 10001
POSTGRES_UID = 999
# roles/model_cache's defaults
CACHE_MOUNT = "/srv/nica-model-cache"
CACHE_DIR = f"{CACHE_MOUNT}/hf-cache"
CACHE_IMAGE = "/var/lib/nica/model-cache.img"
CACHE_MARKER = ".model-cache-unlocked"
KEY_FILE = "/etc/nica-model-cache/key"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def protector_name(key: str) -> str:
    """The fscrypt protector roles/model_cache names after a key (a hash, not the key)."""
    return "nica-model-cache-" + sha256(f"nica-model-cache-protector:{key}")[:16]


def report(name: str) -> Any:
    """A JSON record the side effect left in build/reports."""
    return json.loads((REPORTS / name).read_text())


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")  # in case a run's output was colored


def guard_log(case: str) -> str:
    """The output of one refused run of side_effect_guard.yml, without color codes."""
    return ANSI_ESCAPE.sub("", (REPORTS / f"guard-{case}.log").read_text())


TASK_HEADER = re.compile(r"^TASK \[(.+?)\]")
TASK_STATUS = re.compile(r"^(ok|changed|skipping|failed|fatal): \[")


def task_statuses(log: str) -> dict[str, list[str]]:
    """Each task of an ansible-playbook output ("role : name") with the status line(s) it got."""
    statuses: dict[str, list[str]] = {}
    task = None
    for line in ANSI_ESCAPE.sub("", log).splitlines():
        if header := TASK_HEADER.match(line):
            task = header.group(1)
            statuses.setdefault(task, [])
        elif task is not None and (status := TASK_STATUS.match(line)):
            statuses[task].append(status.group(1))
    return statuses


def recap(log: str) -> dict[str, int]:
    """The host's counters from an ansible-playbook output's PLAY RECAP line."""
    lines = ANSI_ESCAPE.sub("", log).splitlines()
    line = next(line for line in lines if re.match(r"^\S+\s+: ok=", line))
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line)}


@pytest.fixture(scope="module")
def guards() -> Any:
    """What side_effect_guard.yml recorded: exit codes, checksums, the serving container."""
    return report("model-cache-guards.json")


@pytest.fixture(scope="session")
def local_vars() -> dict[str, Any]:
    """The local inventory's backend settings (token, repos), as deployed."""
    path = REPO / "inventory" / "local" / "group_vars" / "backend" / "main.yml"
    return dict(yaml.safe_load(path.read_text()))


@pytest.fixture(scope="session")
def repo_ids(local_vars: dict[str, Any]) -> list[str]:
    """The deployed repos without their pinned revisions."""
    return [entry.split("@")[0] for entry in local_vars["backend_hf_model_repos"]]


@pytest.fixture(scope="session")
def token(local_vars: dict[str, Any]) -> str:
    return str(local_vars["backend_huggingface_token"])


@pytest.fixture(scope="session")
def cache_key(local_vars: dict[str, Any]) -> str:
    """The inventory's model cache key (the cache ends the side effect protected by it)."""
    return str(local_vars["model_cache_key"])


@pytest.fixture(scope="session")
def rotated_key() -> str:
    """The key the side effect rotated to, and back from."""
    return str(yaml.safe_load((REPORTS / "new-key.yml").read_text())["model_cache_key"])


@pytest.fixture()
def sh(host: Any):
    """Run a command on the host; fail with its stderr when it fails."""

    def run(command: str) -> str:
        result = host.run(command)
        assert result.rc == 0, f"`{command}` exited {result.rc}: {result.stderr.strip()}"
        return str(result.stdout)

    return run


@pytest.fixture()
def cache_dir(sh) -> str:
    """Where the hf-cache volume is on the host (the unlocked cache directory)."""
    return str(sh("docker volume inspect -f '{{.Mountpoint}}' hf-cache").strip())


@pytest.fixture()
def release(host: Any) -> dict[str, Any]:
    """The release roles/cutover recorded as deployed."""
    return dict(json.loads(host.file("/opt/nica/state/release.json").content_string))


@pytest.fixture()
def serving(release: dict[str, Any]) -> str:
    """The container of the backend slot that serves (the proxy routes to it)."""
    return f"nica-backend-{release['slot']}-1"


def _request(host: Any, url: str, headers: dict[str, str] | None, body: Any) -> tuple[int, Any]:
    """One HTTP request from the host itself (its python3; no curl on a minimal host)."""
    data = None if body is None else json.dumps(body).encode()
    headers = dict(headers or {})
    if data is not None:
        headers["Content-Type"] = "application/json"
    script = (
        "import json, sys, urllib.request, urllib.error\n"
        f"req = urllib.request.Request({url!r}, data={data!r}, headers={headers!r})\n"
        "try:\n"
        "    r = urllib.request.urlopen(req, timeout=30); code, body = r.status, r.read()\n"
        "except urllib.error.HTTPError as e:\n"
        "    code, body = e.code, e.read()\n"
        "print(json.dumps({'status': code, 'body': body.decode()}))\n"
    )
    result = host.run(f"python3 -c {shlex.quote(script)}")
    assert result.rc == 0, f"request to {url} failed on the host: {result.stderr.strip()}"
    answer = json.loads(result.stdout)
    try:
        return answer["status"], json.loads(answer["body"])
    except json.JSONDecodeError:
        return answer["status"], answer["body"]


@pytest.fixture()
def http_post(host: Any):
    """POST JSON to a URL from the host; (status, parsed body)."""

    def post(url: str, body: Any) -> tuple[int, Any]:
        return _request(host, url, None, body)

    return post


@pytest.fixture()
def http_get(host: Any):
    """GET a URL from the host itself."""

    def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return _request(host, url, headers, None)

    return get


@pytest.fixture()
def psql(sh):
    """Run one SQL query in the stack's database; rows as lists of strings."""

    def query(sql: str) -> list[list[str]]:
        out = sh(
            "docker exec nica-postgres-1 psql -h /var/run/postgresql -U app -d app "
            f"-v ON_ERROR_STOP=1 -At -F '|' -c {shlex.quote(sql)}"
        )
        return [line.split("|") for line in out.splitlines() if line]

    return query


@pytest.fixture()
def hub_log(host: Any) -> list[dict[str, Any]]:
    """Every request the fake Hub answered, in order."""
    content = host.file(HUB_LOG).content_string
    return [json.loads(line) for line in content.splitlines() if line.strip()]
