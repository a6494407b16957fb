"""The proxy as the host runs it, for tests: docker/proxy/nginx.conf in the stand-in nginx
image, started with the proxy service's settings of docker/docker-compose.host.yml (user,
read-only root, tmpfs, memory and pids limits, capabilities), on a Docker network of its
own in front of tests/docker/proxy_stub.py named as the blue slot, published on a loopback
port. Everything made here is named nica-test-proxy-<random> and removed afterwards.
"""

from __future__ import annotations

import importlib.util
import json
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROXY_DIR = REPO / "docker" / "proxy"
COMPOSE = REPO / "docker" / "docker-compose.host.yml"
STUB = Path(__file__).with_name("proxy_stub.py")
NGINX_IMAGE = "nica-test/nginx:stable"
PYTHON_IMAGE = "nica-test/python:3.11-slim"
INTERPOLATED = re.compile(r"^\$\{[A-Z_]+:-([^}]+)\}$")
# As roles/backend/templates/upstream.conf.j2 renders it for the blue slot.
UPSTREAM_CONF = (
    "map $host $nica_slot { default blue; }\n"
    "map $host $nica_upstream { default backend-blue:8000; }\n"
)


def load_test_ca() -> ModuleType:
    """testing/tls/make_test_ca.py (issue(), ensure_ca())."""
    spec = importlib.util.spec_from_file_location(
        "make_test_ca", REPO / "testing" / "tls" / "make_test_ca.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def docker(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} ...: {done.stderr.strip()}")
    return done


def require_docker() -> None:
    """Skip (with the reason) where no Docker engine or stand-in image is available."""
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI here")
    if docker("info", check=False).returncode != 0:
        pytest.skip("no Docker engine answers here")
    for image in (NGINX_IMAGE, PYTHON_IMAGE):
        if docker("image", "inspect", image, check=False).returncode != 0:
            pytest.skip(f"{image} is not built (testing/images/build.sh)")


def _default(value: Any) -> str:
    match = INTERPOLATED.match(str(value))
    return match.group(1) if match else str(value)


def compose_run_args(overrides: Mapping[str, str] | None = None) -> list[str]:
    """`docker run` arguments for the compose file's proxy service, with its defaults;
    `overrides`: another value, e.g. {"mem_limit": "64m"} or {"tmpfs": "/tmp"}."""
    service = yaml.safe_load(COMPOSE.read_text())["services"]["proxy"]
    values = {
        "user": str(service["user"]),
        "mem_limit": _default(service["mem_limit"]),
        "pids_limit": _default(service["pids_limit"]),
        "cpus": _default(service["cpus"]),
        **(overrides or {}),
    }
    args = ["--user", values["user"], "--memory", values["mem_limit"]]
    args += ["--pids-limit", values["pids_limit"], "--cpus", values["cpus"]]
    tmpfs = [values["tmpfs"]] if "tmpfs" in values else list(service["tmpfs"])
    for entry in tmpfs:
        args += ["--tmpfs", _tmpfs_option(str(entry))]
    if service.get("read_only"):
        args.append("--read-only")
    for capability in service.get("cap_drop", []):
        args += ["--cap-drop", capability]
    for option in service.get("security_opt", []):
        args += ["--security-opt", option]
    return args


def _tmpfs_option(entry: str) -> str:
    """A compose tmpfs entry ("/tmp" or "/tmp:size=64m" with ${VAR:-default} resolved)."""
    path, _, options = entry.partition(":")
    options = re.sub(r"\$\{[A-Z_]+:-([^}]+)\}", r"\1", options)
    return f"{path}:{options}" if options else path


def edited(text: str, replacements: Mapping[str, str]) -> str:
    """`text` with each key, found exactly once, replaced by its value."""
    for old, new in replacements.items():
        assert text.count(old) == 1, f"expected {old!r} once in nginx.conf"
        text = text.replace(old, new)
    return text


@dataclass
class Proxy:
    """A running proxy: its URLs on loopback, its container, its logs."""

    name: str
    url: str
    tls_url: str | None
    config_dir: Path
    stub: str
    started: float = field(default_factory=time.monotonic)

    def address(self) -> str:
        """The container's own address on its network (reachable from the host)."""
        return docker(
            "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", self.name
        ).stdout.strip()

    def logs(self) -> tuple[str, str]:
        """(stdout: the JSON access log, stderr: the error log) so far."""
        done = docker("logs", self.name, timeout=60)
        return done.stdout, done.stderr

    def access_log(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs()[0].splitlines() if line.startswith("{")]

    def gateway(self) -> str:
        """The address a client on the host has at the proxy (its network's gateway)."""
        return docker(
            "network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", self.name
        ).stdout.strip()

    def access_line(self, request_id: str, timeout: float = 10) -> dict[str, Any]:
        """The access log's line of the request with this id (docker's log lags a little)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.access_log() if line.get("request_id") == request_id]
            if lines:
                assert len(lines) == 1, f"several lines for {request_id}: {lines}"
                return lines[0]
            assert time.monotonic() < deadline, f"no access log line for {request_id}"
            time.sleep(0.1)

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return docker("exec", self.name, *command, check=False)

    def reload(self) -> None:
        done = self.exec(
            "nginx", "-e", "stderr", "-c", "/etc/nica-proxy/nginx.conf", "-s", "reload"
        )
        assert done.returncode == 0, f"nginx -s reload failed: {done.stderr}"

    def state(self) -> dict[str, Any]:
        """docker inspect's State (OOMKilled, Restarting, ...) and the restart count."""
        info = json.loads(docker("inspect", self.name).stdout)[0]
        return {**info["State"], "RestartCount": info["RestartCount"]}

    def peak_memory_bytes(self) -> int | None:
        """The container's highest memory use so far (cgroup v1 or v2), when readable."""
        full_id = docker("inspect", "-f", "{{.Id}}", self.name).stdout.strip()
        for path in (
            Path(f"/sys/fs/cgroup/memory/docker/{full_id}/memory.max_usage_in_bytes"),
            Path(f"/sys/fs/cgroup/system.slice/docker-{full_id}.scope/memory.peak"),
        ):
            if path.exists():
                return int(path.read_text().strip())
        return None


def wait_until_serving(proxy: Proxy, upstream_up: bool = True, timeout: float = 30) -> None:
    """Until the proxy answers from inside and (`upstream_up`) the stub behind it does too."""
    path = "/__nica/readyz" if upstream_up else "/__nica/slot"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = proxy.exec("curl", "-fsS", "-o", "/dev/null", f"http://127.0.0.1:8000{path}")
        if done.returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"the proxy did not serve within {timeout:.0f} s: {proxy.logs()[1]}")


@contextmanager
def running_proxy(
    workdir: Path,
    config: Mapping[str, str] | None = None,
    tls_files: Mapping[str, Path] | None = None,
    key: Path | None = None,
    run_overrides: Mapping[str, str] | None = None,
    nginx_conf: str | None = None,
    upstream: str = "backend-blue:8000",
) -> Iterator[Proxy]:
    """The proxy in front of the stub. `config`: replacements in nginx.conf (see edited);
    `tls_files`: file name -> file for /etc/nica-proxy/tls/ (tls.conf, certificate.pem,
    ...); `key`: the private key, mounted as /etc/nica-proxy-key/private_key.pem;
    `nginx_conf`: another nginx.conf's text altogether (e.g. an older one); `upstream`:
    where the serving slot is (the stub answers as backend-blue:8000)."""
    name = f"nica-test-proxy-{secrets.token_hex(4)}"
    config_dir = workdir / "proxy"
    (config_dir / "live").mkdir(parents=True)
    text = nginx_conf if nginx_conf is not None else (PROXY_DIR / "nginx.conf").read_text()
    (config_dir / "nginx.conf").write_text(edited(text, config or {}))
    (config_dir / "live" / "upstream.conf").write_text(
        UPSTREAM_CONF.replace("backend-blue:8000", upstream)
    )
    mounts = ["-v", f"{config_dir}:/etc/nica-proxy:ro"]
    ports = ["-p", "127.0.0.1::8000"]
    if tls_files:
        (config_dir / "tls").mkdir()
        for file_name, source in tls_files.items():
            shutil.copy(source, config_dir / "tls" / file_name)
        ports += ["-p", "127.0.0.1::8443"]
    if key is not None:
        key_dir = workdir / "proxy-key"
        key_dir.mkdir()
        shutil.copy(key, key_dir / "private_key.pem")
        mounts += ["-v", f"{key_dir}:/etc/nica-proxy-key:ro"]
    for path in [config_dir, *config_dir.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    if key is not None:  # readable by the proxy's user only, as the deployment must make it
        subprocess.run(["chown", "-R", "65534:65534", str(workdir / "proxy-key")], check=True)
        (workdir / "proxy-key").chmod(0o700)
        (workdir / "proxy-key" / "private_key.pem").chmod(0o400)
    network = name
    docker("network", "create", network)
    try:
        docker(
            "run", "-d", "--name", f"{name}-stub", "--network", network,
            "--network-alias", "backend-blue", "-v", f"{STUB}:/stub.py:ro",
            PYTHON_IMAGE, "python3", "/stub.py",
        )  # fmt: skip
        docker(
            "run", "-d", "--name", name, "--network", network, *compose_run_args(run_overrides),
            *mounts, *ports, "--entrypoint", "nginx", NGINX_IMAGE,
            "-e", "stderr", "-c", "/etc/nica-proxy/nginx.conf", "-g", "daemon off;",
        )  # fmt: skip
        url = f"http://{docker('port', name, '8000/tcp').stdout.split()[0]}"
        tls_url = None
        if tls_files:
            tls_url = f"https://{docker('port', name, '8443/tcp').stdout.split()[0]}"
        proxy = Proxy(name, url, tls_url, config_dir, f"{name}-stub")
        wait_until_serving(proxy, upstream_up=upstream == "backend-blue:8000")
        yield proxy
    finally:
        docker("rm", "-f", name, f"{name}-stub", check=False)
        docker("network", "rm", network, check=False)
