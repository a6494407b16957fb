"""Run the project's playbooks against a scenario's hosts, from the tests themselves.

Each day-2 check is one pytest module: a module-scoped fixture runs what an operator
would run (deploy.yml, rollback.yml, restore.yml, ...) with `ansible_playbook()`, and the
tests assert on what came back and on the hosts. The run's output is also kept in
build/reports/<name>.log (a scenario other than default: build/reports/<scenario>/) for a
human reading a failure.

Shared by every scenario's tests (molecule/*/tests/conftest.py puts this folder on
sys.path): `from runs import ...`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
# molecule verify runs pytest in the scenario's directory, and names it.
SCENARIO = Path(os.environ.get("MOLECULE_SCENARIO_DIRECTORY") or Path.cwd()).resolve()
REPORTS = REPO / "build" / "reports"
if SCENARIO.name != "default":
    REPORTS = REPORTS / SCENARIO.name
DEPLOY = str(REPO / "deploy.yml")
# What deploy.yml says when it takes the no-change fast path, and a task only the full
# path runs (the first of roles/docker_engine; the fast path shows it skipped).
STOPPED_EARLY = "Nothing changed since the last full deploy"
FULL_PATH_TASK = "docker_engine : Check that the host runs a supported distribution"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
TASK_HEADER = re.compile(r"^TASK \[(.+?)\]")
TASK_STATUS = re.compile(r"^(ok|changed|skipping|failed|fatal): \[")


def playbook(name: str) -> str:
    """An operator's playbook by its name: status -> playbooks/status.yml."""
    return str(REPO / "playbooks" / f"{name}.yml")


@dataclass
class Run:
    """One ansible-playbook run: its exit code, output (no colour codes) and wall time."""

    name: str
    rc: int
    output: str
    seconds: float
    args: list[str] = field(default_factory=list)

    def recap(self) -> dict[str, int]:
        """The first host's counters from the PLAY RECAP line."""
        line = next(line for line in self.output.splitlines() if re.match(r"^\S+\s+: ok=", line))
        return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line)}

    def recaps(self) -> dict[str, dict[str, int]]:
        """Every host's counters from the PLAY RECAP: host -> {ok, changed, failed, ...}."""
        rows = re.findall(r"^(\S+)\s+: (ok=.+)$", self.output, flags=re.M)
        return {
            host: {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", counts)}
            for host, counts in rows
        }

    def table(self) -> dict[str, tuple[str, str]]:
        """The ROLLOUT table at the end of the run (callback_plugins/rollout_table.py):
        host -> (release, state)."""
        lines = self.output[self.output.rindex("\nROLLOUT ") :].splitlines()[3:]
        rows = (line.split(None, 2) for line in itertools.takewhile(str.strip, lines))
        return {row[0]: (row[1], row[2]) for row in rows if len(row) == 3}

    def results(self, task: str) -> dict[str, str]:
        """The result text (debug messages; a module's output with -v) of the task(s) whose
        name starts with `task` (a role's: "role : name"), per host, over every play or
        batch that ran it."""
        results: dict[str, str] = {}
        for section in re.split(r"^TASK \[", self.output, flags=re.M)[1:]:
            if not re.match(rf"(?:\w+ : )?{re.escape(task)}", section):
                continue
            blocks = re.split(r"^(?:changed|ok|fatal): \[([^\]\s]+)[^\]]*\]", section, flags=re.M)
            results.update({blocks[i]: blocks[i + 1] for i in range(1, len(blocks) - 1, 2)})
        return results

    def said(self) -> str:
        """The output on one line, runs of whitespace as one space (messages wrap)."""
        return " ".join(self.output.split())

    def tasks(self) -> dict[str, list[str]]:
        """Each task ("role : name") with the status line(s) it got."""
        statuses: dict[str, list[str]] = {}
        task = None
        for line in self.output.splitlines():
            if header := TASK_HEADER.match(line):
                task = header.group(1)
                statuses.setdefault(task, [])
            elif task is not None and (status := TASK_STATUS.match(line)):
                statuses[task].append(status.group(1))
        return statuses

    def ran(self, task: str) -> bool:
        """Whether the task ("role : name") ran (ok or changed), not only showed as skipped."""
        return any(status in ("ok", "changed") for status in self.tasks().get(task, []))

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output.splitlines()[-lines:])

    def __str__(self) -> str:  # what an assertion message shows
        return f"{self.name} (exit {self.rc}, {self.seconds:.0f} s):\n{self.tail()}"


# Every run of this session, for the checks that no secret reached any output.
RUNS: list[Run] = []


def stories_first(items: list[Any], stories: list[str]) -> None:
    """A scenario's conftest order (pytest_collection_modifyitems): the stories first, in
    STORIES order (each changes the hosts the next one starts from), then the other
    modules; tests keep their order within a module."""

    def rank(item: Any) -> int:
        module = item.module.__name__ if item.module else ""
        return stories.index(module) if module in stories else len(stories)

    items.sort(key=rank)


def fact_cache() -> Path:
    """Where nested runs cache the facts they gather: in this Molecule instance's own
    directory (a host made again under the same name has other facts, an address first)."""
    return Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", REPO / "build")) / "fact-cache"


def env() -> dict[str, str]:
    """The environment of a nested run: no colour, and the facts gathered once cached
    (tests only: the roles read only facts that do not change while the host lives;
    conftest empties the cache when a session starts)."""
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_GATHERING": "smart",
        "ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(fact_cache()),
        "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "7200",
    }


def _start(*args: str) -> tuple[list[str], subprocess.Popen[str]]:
    """ansible-playbook -i <the scenario's inventory> ARGS, started: (its command, process)."""
    command = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], *args]
    REPORTS.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        command,
        env=env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return command, process


def _finish(name: str, command: list[str], rc: int, output: str, started: float) -> Run:
    """The run, its output (no colour codes) kept in build/reports/<name>.log."""
    output = ANSI_ESCAPE.sub("", output)
    run = Run(name, rc, output, time.monotonic() - started, args=command[3:])
    (REPORTS / f"{name}.log").write_text(f"$ {shlex.join(command)}\n{output}", encoding="utf-8")
    RUNS.append(run)
    return run


def ansible_playbook(name: str, *args: str, timeout: int = 1800) -> Run:
    """ansible-playbook -i <the scenario's inventory> ARGS; never raises on failure."""
    started = time.monotonic()
    command, process = _start(*args)
    output, _ = process.communicate(timeout=timeout)
    return _finish(name, command, process.returncode, output, started)


def ansible_playbook_killed_at(name: str, task: str, *args: str, timeout: int = 1800) -> Run:
    """ansible-playbook ARGS, killed with SIGKILL, its whole process group (what `kill -9`
    of an operator's run, or a lost controller, does), as soon as it starts `task` (a task
    name, without its role)."""
    started = time.monotonic()
    command, process = _start(*args)
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if re.search(rf"^TASK \[(.+ : )?{re.escape(task)}\]", ANSI_ESCAPE.sub("", line)):
            os.killpg(process.pid, signal.SIGKILL)
            break
        assert time.monotonic() - started < timeout, f"{name}: no task {task!r} within {timeout} s"
    lines.extend(process.stdout)
    return _finish(name, command, process.wait(), "".join(lines), started)


def vars_file(name: str, values: dict[str, Any]) -> str:
    """`@file` for -e: the values in a vars file of its own (0600), as an operator's vault
    holds secrets; never on a command line."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    path = REPORTS / f"{name}.yml"
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return f"@{path}"


def next_release(path: Path, migrations: int) -> Path:
    """A test-only next release at `path` on the controller: a copy of the checkout with
    the first `migrations` of testing/next_release (0004 backward compatible, 0005 not).
    Deployed with -e backend_project_dir=<path>, it builds from it as a new version of the
    code would (testing/next_release/README.md)."""
    shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(
        REPO, path, symlinks=True, ignore=shutil.ignore_patterns("build", ".venv", ".git")
    )
    (path / "build").symlink_to(REPO / "build")
    for migration in sorted((REPO / "testing" / "next_release").glob("000*.py"))[:migrations]:
        shutil.copy(migration, path / "backend" / "migrations" / "versions" / migration.name)
    return path


def deploy(name: str, *args: str) -> Run:
    """deploy.yml with ARGS (extra vars, --check, --tags ...)."""
    return ansible_playbook(name, *args, DEPLOY)


@functools.cache
def api_keys() -> tuple[dict[str, str], ...]:
    """The scenario's backend_api_keys ({name, scope, key} each), as deployed: its
    inventory's group_vars/backend/main.yml, linked by molecule.yml; () when it sets none
    (the API is open)."""
    inventory = yaml.safe_load((SCENARIO / "molecule.yml").read_text())["provisioner"]["inventory"]
    main = SCENARIO / inventory["links"]["group_vars"] / "backend" / "main.yml"
    settings = yaml.safe_load(main.read_text()) if main.is_file() else {}
    return tuple(settings.get("backend_api_keys") or ())


def api_key(scope: str) -> str | None:
    """The scenario's first key of that scope (read or write); None when it has none."""
    return next((entry["key"] for entry in api_keys() if entry["scope"] == scope), None)


def http(
    host: Any,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    key: str | None = "",
) -> tuple[int, Any]:
    """One HTTP request from the host itself (its python3; no curl on a minimal host):
    (status, the body parsed as JSON, or as text when it is not JSON). A /v1 request
    carries `key` as `Authorization: Bearer` ('': the scenario's write key, if it has one;
    None: no key)."""
    data = None if body is None else json.dumps(body).encode()
    headers = dict(headers or {})
    if key == "" and "/v1/" in url:
        key = api_key("write")
    if key and "/v1/" in url:
        headers.setdefault("Authorization", f"Bearer {key}")
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


def ready_status(host: Any) -> int:
    """/readyz through the host's proxy: its status, 0 when nothing answers."""
    script = (
        "import urllib.request, urllib.error\n"
        "try:\n"
        "    print(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=3).status)\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code)\n"
        "except OSError:\n"
        "    print(0)\n"
    )
    return int(host.run(f"python3 -c {shlex.quote(script)}").stdout.strip() or 0)


def sh(host: Any, command: str) -> str:
    """Run a shell command on the host; its stdout, or an assertion naming what failed."""
    result = host.run(command)
    assert result.rc == 0, f"`{command}` exited {result.rc}: {result.stderr.strip()}"
    return str(result.stdout)


def record(host: Any) -> dict[str, Any]:
    """state/release.json: the release the host serves, in which slot."""
    return dict(json.loads(host.file("/opt/nica/state/release.json").content_string))


def inspect(host: Any, container: str) -> dict[str, Any]:
    """docker inspect of one container on the host ({} when there is none)."""
    result = host.run(f"docker inspect {shlex.quote(container)}")
    return dict(json.loads(result.stdout)[0]) if result.rc == 0 else {}


def serving(host: Any) -> str:
    """The container of the slot the record names."""
    return f"nica-backend-{record(host)['slot']}-1"


def wait_for_file(host: Any, path: str, timeout: float = 60) -> bool:
    """Whether a file a test client on the host writes when it ends is there, within the
    timeout."""
    deadline = time.monotonic() + timeout
    while not host.file(path).exists and time.monotonic() < deadline:
        time.sleep(0.5)
    return bool(host.file(path).exists)


# Installed by prepare.yml.
STEADY_CLIENT = "/usr/local/lib/steady_client.py"
SLOW_UPLOAD = "/usr/local/lib/slow_upload.py"


# The API keys the steady client sends, one file per run: the test's own files, the only
# place on the host a key is (test_model_cache.py's file scan leaves this folder out).
CLIENT_KEYS = "/etc/nica-test-client"


def client_key_option(host: Any, key: str | None) -> str:
    """' --api-key-file PATH' for a test client on the host (steady_client.py,
    slow_upload.py), '' without a key. One file per key, named after its hash, placed once:
    through Ansible's copy, whose content is never logged nor on a command line (5 s a
    call: not once per run)."""
    if not key:
        return ""
    path = f"{CLIENT_KEYS}/{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if not host.file(path).exists:
        sh(host, f"install -d -m 0700 {CLIENT_KEYS}")
        arguments = {"content": key, "dest": path, "mode": "0600"}
        result = host.ansible("copy", json.dumps(arguments), check=False)
        assert not result.get("failed"), f"cannot place the client's key: {result.get('msg')}"
    return f" --api-key-file {path}"


@contextlib.contextmanager
def steady_client(
    host: Any,
    case: str,
    warmup_s: float = 2.0,
    key: str | None = "",
    url: str = "http://127.0.0.1:8000",
    options: str = "",
) -> Iterator[dict[str, Any]]:
    """A steady client (testing/load/steady_client.py) on the host, sending requests to
    the published port (or `url`, with more of its `options`: --ca-file for https) for the
    duration of the `with`, with `key` ('': the scenario's read key, if it has one; None:
    none); the dict it yields is filled with its result when the block ends (sent, failed,
    longest gap without a success)."""
    out = f"/var/log/steady-{case}.json"
    sh(host, f"rm -f /run/steady-client.stop {out}")
    key_option = client_key_option(host, api_key("read") if key == "" else key)
    sh(
        host,
        f"systemd-run --unit steady-client-{case} --collect /usr/bin/python3 {STEADY_CLIENT}"
        f" --url {url} --model sentence-transformers/all-MiniLM-L6-v2 --out {out}"
        " --stop-file /run/steady-client.stop --threads 2 --max-requests 30000 --max-seconds 900"
        f"{key_option} {options}",
    )
    time.sleep(warmup_s)
    result: dict[str, Any] = {}
    try:
        yield result
    finally:
        time.sleep(warmup_s)
        sh(host, "touch /run/steady-client.stop")
        wait_for_file(host, out)
        result.update(json.loads(host.file(out).content_string))


@contextlib.contextmanager
def slow_upload(host: Any, case: str) -> Iterator[dict[str, Any]]:
    """One request (testing/load/slow_upload.py) on the host whose body is still arriving
    when the proxy switches slots, until the deploy drains the proxy or the old slot stops;
    the dict it yields is filled with its result (status, right answer, old slot stopped
    first) when the block ends."""
    out = f"/var/log/slow-upload-{case}.json"
    sh(host, f"rm -f {out}")
    sh(
        host,
        f"systemd-run --unit slow-upload-{case} --collect /usr/bin/python3 {SLOW_UPLOAD}"
        f" --url http://127.0.0.1:8000 --model sentence-transformers/all-MiniLM-L6-v2 --out {out}"
        " --switch-file /opt/nica/compose/proxy/live/upstream.conf"
        f"{client_key_option(host, api_key('read'))}",
    )
    result: dict[str, Any] = {}
    try:
        yield result
    finally:
        if wait_for_file(host, out):
            result.update(json.loads(host.file(out).content_string))


class Prometheus:
    """Debian's prometheus (scripts/test installs it) on this machine, scraping one slot
    per target through the host's published metrics port (the proxy's metrics server:
    /slots/<blue|green>/metrics), every second, for as long as the test session runs."""

    def __init__(self, workdir: Path, metrics_port: int) -> None:
        binary = shutil.which("prometheus")
        assert binary, "no prometheus: install Debian's `prometheus` package (scripts/test does)"
        with socket.socket() as probe:  # a free port for its API on loopback
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": f"nica-{slot}",
                    "metrics_path": f"/slots/{slot}/metrics",
                    # The slot's own nica_release_info says the same slot.
                    "honor_labels": True,
                    "static_configs": [
                        {"targets": [f"127.0.0.1:{metrics_port}"], "labels": {"slot": slot}}
                    ],
                }
                for slot in ("blue", "green")
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        self.log = (REPORTS / "prometheus.log").open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not self._ready():
            assert self.process.poll() is None, "prometheus exited: build/reports/prometheus.log"
            assert time.monotonic() < deadline, "prometheus not ready in 60 s"
            time.sleep(0.5)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2):
                return True
        except OSError:
            return False

    def api(self, endpoint: str, **params: Any) -> list[dict[str, Any]]:
        """The result of /api/v1/<endpoint> (query or query_range)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{endpoint}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=30) as answer:
            document = json.loads(answer.read())
        assert document["status"] == "success", document
        return list(document["data"]["result"])

    def value(self, query: str, at: float | None = None) -> float:
        """A query's single value (0 when it has none), now or at a time."""
        result = self.api("query", query=query, **({"time": at} if at else {}))
        assert len(result) <= 1, f"{query} has {len(result)} series, expected one"
        return float(result[0]["value"][1]) if result else 0.0

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


# Run in a backend slot with the slot's own settings (DATABASE_URL, DATABASE_PASSWORD_FILE):
# the role it connects as, then the SQLSTATE of the statement in argv[1] ("ok" if it ran).
AS_THE_SLOT = """
import sys
from sqlalchemy import text
from src.database.session import create_engine_from_settings
from src.settings import Settings
with create_engine_from_settings(Settings.from_env()).connect() as connection:
    print(connection.execute(text("SELECT current_user")).scalar())
    try:
        connection.execute(text(sys.argv[1]))
        print("ok")
    except Exception as error:
        print(getattr(getattr(error, "orig", None), "sqlstate", None) or type(error).__name__)
    connection.rollback()
"""
INSUFFICIENT_PRIVILEGE = "42501"  # PostgreSQL's SQLSTATE for "permission denied"


def as_the_slot(host: Any, container: str, statement: str) -> tuple[str, str]:
    """`statement` run in a backend container as the database role it connects as:
    (that role, the SQLSTATE it failed with or "ok"); rolled back either way."""
    out = sh(
        host,
        f"docker exec {container} python -c {shlex.quote(AS_THE_SLOT)} {shlex.quote(statement)}",
    )
    user, outcome = out.split()
    return user, outcome
