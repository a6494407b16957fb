"""The proxy under attack, beside a steady client (testing/load/steady_client.py) and a
probe that times a normal request every 0.2 s; the proxy as tests/docker/proxy_support.py
runs it (the compose file's memory limit and tmpfs).

- 60, then 120 connections each sending a 4 MiB POST body minus its last byte, and holding
  it (once the proxy's only worker was OOM-killed by this: issue 22);
- the same 120 when one address may hold any number of large bodies (as 120 clients from
  120 addresses would): the sized /tmp fills, nothing is killed;
- all of it at once: the memory limit covers a full /tmp and every connection nginx takes;
- 5,000 connections that send part of a request header and stop, in plain HTTP and over
  TLS (docker/proxy/tls.conf; each TLS connection holds more memory). These go to the
  container's own address, not the published loopback port: this machine's Docker engine
  (20.10) forwards a loopback port with its userland docker-proxy, which itself stops
  accepting (connection refused) after ~5,000 connections, before nginx or the old
  configuration is even tested. (A target host's engine reaches nginx without it from
  other machines.)

Heavy and slow (~2 min, ~1 GB through loopback): run only with NICA_PROXY_ATTACKS=1, on
an otherwise idle machine: `NICA_PROXY_ATTACKS=1 python -m pytest -q -s
tests/docker/test_proxy_attacks.py`. Each test appends its figures as one JSON line to
build/proxy_attacks.jsonl (and prints them).

To see the same tests fail on another configuration (e.g. the one before issue 22):
NICA_PROXY_NGINX_CONF=<an nginx.conf> NICA_PROXY_TMPFS=/tmp (an unsized tmpfs).
"""

from __future__ import annotations

import json
import os
import resource
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.docker.proxy_support import (
    PROXY_DIR,
    REPO,
    Proxy,
    load_test_ca,
    require_docker,
    running_proxy,
)

STEADY_CLIENT = REPO / "testing" / "load" / "steady_client.py"
REPORT = REPO / "build" / "proxy_attacks.jsonl"
BODY = 4 * 1024 * 1024  # client_max_body_size 4m: the largest body the proxy takes
NORMAL_LATENCY_S = 1.0


@pytest.fixture(autouse=True, scope="module")
def many_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 12000
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"5,000 connections need {wanted} open files; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))


def address(proxy: Proxy) -> tuple[str, int]:
    url = urllib.parse.urlsplit(proxy.url)
    return url.hostname or "127.0.0.1", url.port or 80


SERVER_NAME = "nica.test"  # what the test certificate is for (besides 127.0.0.1)


@dataclass
class Probe:
    """A normal client: GET /v1/models on a new connection every 0.2 s, timed."""

    url: str
    tls: ssl.SSLContext | None = None
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def once(self) -> None:
        url = urllib.parse.urlsplit(self.url)
        with socket.create_connection((url.hostname, url.port), timeout=10) as raw:
            sock = (
                raw if self.tls is None else self.tls.wrap_socket(raw, server_hostname=SERVER_NAME)
            )
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        status = answer.split(b"\r\n", 1)[0]
        if b" 200 " not in status:
            raise OSError(f"answered {status!r}")

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self.once()
                self.latencies.append(time.monotonic() - started)
            except OSError as error:
                self.failures.append(f"{time.monotonic() - started:.2f}s {error}")
            self.stop.wait(0.2)


def url_of(proxy: Proxy, direct: bool, tls: bool) -> str:
    """The published loopback port, or (`direct`) the container's own address."""
    if not direct:
        return str(proxy.tls_url) if tls else proxy.url
    return f"https://{proxy.address()}:8443" if tls else f"http://{proxy.address()}:8000"


@contextmanager
def beside_a_steady_client(
    proxy: Proxy, workdir: Path, ca: Path | None = None, direct: bool = False
) -> Iterator[dict[str, Any]]:
    """The steady client and the probe run for the whole block (over TLS, trusting `ca`,
    when given; to the container's own address when `direct`); the dict gets their
    figures."""
    figures: dict[str, Any] = {}
    stop_file = workdir / "steady.stop"
    out = workdir / "steady.json"
    url = url_of(proxy, direct, tls=ca is not None)
    command = [
        sys.executable, str(STEADY_CLIENT), "--url", url, "--model", "stub",
        "--out", str(out), "--stop-file", str(stop_file), "--max-seconds", "600",
    ]  # fmt: skip
    if ca is not None:
        command += ["--ca-file", str(ca), "--server-name", SERVER_NAME]
    client = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    tls = None if ca is None else ssl.create_default_context(cafile=str(ca))
    probe = Probe(url, tls)
    probing = threading.Thread(target=probe.run)
    probing.start()
    time.sleep(2)  # both running before the attack
    try:
        yield figures
        time.sleep(2)  # and after it
    finally:
        stop_file.touch()
        probe.stop.set()
        probing.join(timeout=30)
        _, stderr = client.communicate(timeout=120)
    assert client.returncode == 0, stderr
    steady = json.loads(out.read_text())
    latencies = sorted(probe.latencies)
    figures.update(
        steady={key: steady[key] for key in ("sent", "ok", "failed", "failures", "longest_gap_s")},
        probe={
            "requests": len(latencies) + len(probe.failures),
            "failed": probe.failures[:5],
            "median_s": round(statistics.median(latencies), 3) if latencies else None,
            "max_s": round(latencies[-1], 3) if latencies else None,
        },
    )


def outcome(proxy: Proxy) -> dict[str, Any]:
    """How the proxy came through: worker deaths, OOM kills, restarts, peak memory."""
    _, errors = proxy.logs()
    state = proxy.state()
    peak = proxy.peak_memory_bytes()
    return {
        "worker_deaths": errors.count("exited on signal"),
        "oom_killed": state["OOMKilled"],
        "restarts": state["RestartCount"],
        "running": state["Running"],
        "peak_memory_mib": round(peak / 2**20, 1) if peak else None,
        "error_log_tail": errors.strip().splitlines()[-3:],
    }


def held_bodies(proxy: Proxy, count: int, hold_s: float) -> dict[str, int]:
    """`count` connections that each send a BODY-byte POST minus its last byte, all at once,
    then hold it for `hold_s` seconds; what the proxy answered them."""
    host, port = address(proxy)
    head = (
        f"POST /v1/embeddings HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {BODY}\r\n\r\n"
    ).encode()
    chunk = b" " * (1024 * 1024)
    sockets: list[socket.socket] = []
    answers: dict[str, int] = {}
    lock = threading.Lock()

    def note(what: str) -> None:
        with lock:
            answers[what] = answers.get(what, 0) + 1

    def attack() -> None:
        sock = socket.create_connection((host, port), timeout=30)
        with lock:
            sockets.append(sock)
        try:
            sock.sendall(head)
            left = BODY - 1
            while left:
                left -= sock.send(chunk[: min(left, len(chunk))])
            note("sent all but the last byte")
        except OSError as error:
            note(f"cut off while sending ({type(error).__name__})")

    threads = [threading.Thread(target=attack) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    time.sleep(hold_s)
    for sock in sockets:
        sock.settimeout(0.5)
        try:
            first = sock.recv(64)
            note(first.split(b"\r\n")[0].decode(errors="replace") or "closed by the proxy")
        except TimeoutError:
            note("still held (no answer)")
        except OSError as error:
            note(f"reset ({type(error).__name__})")
        finally:
            sock.close()
    return answers


def report(name: str, figures: dict[str, Any]) -> None:
    line = json.dumps({"test": name, **figures})
    print(line)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    with REPORT.open("a") as handle:
        handle.write(line + "\n")


def assert_survived(figures: dict[str, Any], max_latency_s: float | None = None) -> None:
    survived = figures["proxy"]
    assert figures["steady"]["failed"] == 0, f"the steady client lost requests: {figures}"
    assert (survived["worker_deaths"], survived["oom_killed"], survived["restarts"]) == (
        0,
        False,
        0,
    ), f"the proxy was hurt: {figures}"
    assert figures["probe"]["failed"] == [], f"the normal client failed: {figures}"
    if max_latency_s is not None:
        slowest = figures["probe"]["max_s"]
        assert slowest < max_latency_s, f"the normal client waited {slowest} s: {figures}"


def under_test(config: dict[str, str] | None = None) -> dict[str, Any]:
    """running_proxy's arguments: this repository's proxy, or the one the environment names
    (then without `config`, which is this repository's nginx.conf's)."""
    other = os.environ.get("NICA_PROXY_NGINX_CONF")
    tmpfs = os.environ.get("NICA_PROXY_TMPFS")
    if other is None:
        return {"config": config}
    return {
        "nginx_conf": Path(other).read_text(),
        "run_overrides": {"tmpfs": tmpfs} if tmpfs else None,
    }


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    require_docker()
    return tmp_path


def test_60_then_120_held_4_mib_bodies(workdir: Path) -> None:
    with running_proxy(workdir, **under_test()) as proxy:
        with beside_a_steady_client(proxy, workdir) as figures:
            figures["attack_60"] = held_bodies(proxy, 60, hold_s=12)
            figures["attack_120"] = held_bodies(proxy, 120, hold_s=12)
        figures["proxy"] = outcome(proxy)
    report("60 then 120 held 4 MiB bodies, one address", figures)
    assert_survived(figures)


def test_120_held_bodies_as_from_120_addresses(workdir: Path) -> None:
    """One address may hold any number of large bodies here: the sized /tmp is the bound;
    the bodies that do not fit are refused in OpenAI's shape."""
    config = {"limit_conn nica_large_bodies 16;": "limit_conn nica_large_bodies 1000;"}
    with running_proxy(workdir, **under_test(config)) as proxy:
        with beside_a_steady_client(proxy, workdir) as figures:
            figures["attack_120"] = held_bodies(proxy, 120, hold_s=12)
        figures["proxy"] = outcome(proxy)
        refused = [line for line in proxy.access_log() if line["status"] == 500]
    report("120 held 4 MiB bodies, no per-address limit", figures)
    assert_survived(figures)
    assert refused, "no large body was refused: /tmp did not fill up"


def slow_headers(proxy: Proxy, count: int, tls: ssl.SSLContext | None = None) -> dict[str, Any]:
    """`count` connections to the container's own address that each send part of a request
    header, then nothing; held for 5 s after the last one opened, then closed."""
    url = urllib.parse.urlsplit(url_of(proxy, direct=True, tls=tls is not None))
    opened: list[socket.socket] = []
    failed: dict[str, int] = {}
    started = time.monotonic()
    for _ in range(count):
        try:
            sock = socket.create_connection((url.hostname, url.port), timeout=5)
            if tls is not None:
                sock = tls.wrap_socket(sock, server_hostname=SERVER_NAME)
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            opened.append(sock)
        except OSError as error:
            failed[type(error).__name__] = failed.get(type(error).__name__, 0) + 1
    opening = time.monotonic() - started
    time.sleep(5)  # the later ones still within client_header_timeout (10 s)
    for sock in opened:
        sock.close()
    return {"opened": len(opened), "failed": failed, "open_s": round(opening, 1)}


def test_5000_slow_header_connections(workdir: Path) -> None:
    with running_proxy(workdir, **under_test()) as proxy:
        with beside_a_steady_client(proxy, workdir, direct=True) as figures:
            figures["slow_headers"] = slow_headers(proxy, 5000)
        figures["proxy"] = outcome(proxy)
    report("5000 slow header-only connections", figures)
    assert_survived(figures, max_latency_s=NORMAL_LATENCY_S)


def test_5000_slow_header_connections_over_tls(workdir: Path) -> None:
    if os.environ.get("NICA_PROXY_NGINX_CONF"):
        pytest.skip("TLS is this repository's docker/proxy/tls.conf")
    ca = load_test_ca()
    issued = ca.issue(workdir / "ca", [SERVER_NAME], ["127.0.0.1"])
    files = {"tls.conf": PROXY_DIR / "tls.conf", "certificate.pem": issued.certificate}
    with running_proxy(workdir / "run", tls_files=files, key=issued.key) as proxy:
        trusted = workdir / "ca" / "ca.pem"
        with beside_a_steady_client(proxy, workdir, ca=trusted, direct=True) as figures:
            tls = ssl.create_default_context(cafile=str(workdir / "ca" / "ca.pem"))
            figures["slow_headers"] = slow_headers(proxy, 5000, tls)
        figures["proxy"] = outcome(proxy)
    report("5000 slow header-only connections over TLS", figures)
    assert_survived(figures, max_latency_s=NORMAL_LATENCY_S)


def test_held_bodies_and_slow_tls_headers_at_once(workdir: Path) -> None:
    """The worst case for memory: /tmp full of held bodies (no per-address limit, as from
    120 addresses) and every connection nginx takes held by a slow TLS client."""
    if os.environ.get("NICA_PROXY_NGINX_CONF"):
        pytest.skip("TLS is this repository's docker/proxy/tls.conf")
    ca = load_test_ca()
    issued = ca.issue(workdir / "ca", [SERVER_NAME], ["127.0.0.1"])
    files = {"tls.conf": PROXY_DIR / "tls.conf", "certificate.pem": issued.certificate}
    config = {"limit_conn nica_large_bodies 16;": "limit_conn nica_large_bodies 1000;"}
    with running_proxy(workdir / "run", config=config, tls_files=files, key=issued.key) as proxy:
        trusted = workdir / "ca" / "ca.pem"
        with beside_a_steady_client(proxy, workdir, ca=trusted, direct=True) as figures:
            bodies = threading.Thread(
                target=lambda: figures.update(attack_120=held_bodies(proxy, 120, hold_s=12))
            )
            bodies.start()
            tls = ssl.create_default_context(cafile=str(trusted))
            figures["slow_headers"] = slow_headers(proxy, 5000, tls)
            bodies.join(timeout=300)
        figures["proxy"] = outcome(proxy)
    report("120 held bodies and 5000 slow TLS headers at once", figures)
    assert_survived(figures)
