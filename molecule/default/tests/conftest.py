"""Shared helpers for the checks of the deployed host (molecule verify: testinfra).

The checks run on the controller and look at the Debian 13 host through Ansible's
connection: `host.run` executes there, so `docker ...` talks to the host's own engine.
Failure messages never include a secret: tokens are compared by hash.

The modules run in STORIES order: first the day-2 stories, each a module whose fixture
runs what an operator would (runs.py) and whose tests assert on it right away; then the
checks of the host as those stories left it (the rest, alphabetically), the local Hub
stopped by then (hub_commits), as on a host with no route to it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml

# The helpers every scenario's tests share: molecule/shared/runs.py (`from runs import ...`).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from runs import Prometheus, fact_cache, http, next_release, stories_first

REPO = Path(__file__).resolve().parents[3]
REPORTS = REPO / "build" / "reports"
# This machine's port for the host's published metrics (molecule.yml).
METRICS_PORT = int(os.environ.get("NICA_METRICS_PORT") or 19464)
# The day-2 stories, in the order they run; every other module comes after them.
STORIES = [
    "test_tokens",
    "test_corrupt_onnx",
    "test_compose_down",
    "test_fast_path",
    "test_dryrun",
    "test_redeploy",
    "test_backups",
    # Before a story that deploys the inventory's settings again (its deploy carries a mark
    # of its own: a release test_tls's "TLS on is not a new release" must not start from).
    "test_database_roles",
    "test_prefetch_interrupted",
    "test_guards",
    "test_model_cache_keys",
    "test_lock",
    # Last: it leaves TLS on (a later deploy without its variables would turn it off).
    "test_tls",
]


@pytest.fixture(scope="session")
def session_host() -> Any:
    """The scenario's one host for session-wide fixtures (testinfra's `host` is per module)."""
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    hosts = testinfra.get_hosts(["ansible://all"], ansible_inventory=inventory)
    assert len(hosts) == 1, f"expected the scenario's one host in {inventory}, got {hosts}"
    return hosts[0]


@pytest.fixture(scope="session", autouse=True)
def stories_start(session_host: Any) -> None:
    """Where the fake Hub's request log stands before the first story (test_cached_models_*
    checks that nothing after converge downloaded the deployed models again); and no facts
    cached from an earlier host of the same name."""
    shutil.rmtree(fact_cache(), ignore_errors=True)
    result = session_host.run(
        "wc -l < /var/log/fake-hub/requests.jsonl > /var/log/fake-hub/side-effect-start"
    )
    assert result.rc == 0, result.stderr


@pytest.fixture(scope="session")
def hub_commits(session_host: Any, local_vars: dict[str, Any], token: str) -> dict[str, str]:
    """The commit the local Hub serves for each deployed repo; then the Hub is stopped, as
    on a host with no route to it: the checks that use this fixture run without it."""
    commits = {}
    for entry in local_vars["backend_hf_model_repos"]:
        repo, _, revision = f"{entry}@main".partition("@")
        revision = revision.split("@")[0]
        status, body = http(
            session_host,
            f"http://127.0.0.1:8080/api/models/{repo}/revision/{revision}",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert status == 200, f"the fake Hub answered {status} for {repo}@{revision}"
        commits[repo] = body["sha"]
    assert session_host.run("systemctl stop fake-hf-hub").rc == 0
    return commits


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A real Prometheus scraping the host's slots (runs.Prometheus), from the first test
    that asks for it (test_redeploy's story, so that it sees the cut-overs) to the end."""
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), METRICS_PORT)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def next_releases() -> dict[str, Path]:
    """Two test-only next releases on the controller, in build/next-releases/: copies of
    the checkout with testing/next_release/0004 (backward compatible) and 0004 + 0005
    (not). Deployed with -e backend_project_dir=<copy>, they build from it as a new
    version of the code would (testing/next_release/README.md)."""
    root = REPO / "build" / "next-releases"
    return {
        "compatible": next_release(root / "next-compatible", 1),
        "incompatible": next_release(root / "next-incompatible", 2),
    }


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    stories_first(items, STORIES)


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
def tls_pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """A throwaway CA made on the controller (testing/tls/make_test_ca.py) and what it
    issued, PEM text: the first certificate, the second (a rotation, 10 days: status.yml
    warns), an expired one, and a key no certificate matches. Each {certificate, key}; ca."""
    sys.path.insert(0, str(REPO / "testing" / "tls"))
    import make_test_ca  # a script's module, found only here

    directory = tmp_path_factory.mktemp("tls-ca")
    names, ips = ["nica.test"], ["127.0.0.1"]
    issued = {
        "first": make_test_ca.issue(directory, names, ips, days=30, prefix="first"),
        "second": make_test_ca.issue(directory, names, ips, days=10, prefix="second"),
        "expired": make_test_ca.issue(directory, names, ips, expired=True, prefix="expired"),
        "other": make_test_ca.issue(directory, ["other.test"], [], prefix="other"),
    }
    pki = {
        name: {"certificate": pair.certificate.read_text(), "key": pair.key.read_text()}
        for name, pair in issued.items()
    }
    return pki | {"ca": {"certificate": (directory / make_test_ca.CA_CERT).read_text()}}


def key_marker(pem: str) -> str:
    """A PEM private key's first line of base64: found in any copy of it, whatever the line
    ends became (a JSON string, a log line), and in no other key."""
    return pem.strip().splitlines()[1]


@pytest.fixture(scope="session")
def rotated_key() -> str:
    """The key test_model_cache_keys rotates to, and back from (a fresh one each run)."""
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture(scope="session")
def api_keys(local_vars: dict[str, Any]) -> dict[str, str]:
    """The inventory's API keys, scope -> key (one of each: local-writer, local-reader)."""
    return {entry["scope"]: str(entry["key"]) for entry in local_vars["backend_api_keys"]}


@pytest.fixture(scope="session")
def rotated_api_key() -> str:
    """The read key test_redeploy rotates the inventory's read key to (a fresh one each run)."""
    return "nica-rotated-read-" + os.urandom(16).hex()


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


@pytest.fixture()
def http_post(host: Any):
    """POST JSON to a URL from the host; (status, parsed body)."""

    def post(url: str, body: Any) -> tuple[int, Any]:
        return http(host, url, body=body)

    return post


@pytest.fixture()
def http_get(host: Any):
    """GET a URL from the host itself."""

    def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return http(host, url, headers=headers)

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
