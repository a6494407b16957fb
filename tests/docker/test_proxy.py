"""docker/proxy/nginx.conf for real: the stand-in nginx image run as the compose file runs
the proxy, in front of a stub slot (tests/docker/proxy_support.py). What the slot is told
(X-Nica-Public, X-Request-ID), the JSON access log, nginx's own answers in OpenAI's error
shape, the per-client limits, and TLS (docker/proxy/tls.conf, tls-redirect.conf).

The attacks (held bodies, slow headers) are in test_proxy_attacks.py."""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.docker.proxy_support import (
    PROXY_DIR,
    REPO,
    Proxy,
    docker,
    load_test_ca,
    require_docker,
    running_proxy,
)

sys.path.insert(0, str(REPO / "backend"))  # the backend's own definitions, not copies
from src.api.errors import ErrorResponse
from src.api.health import PUBLIC_HEADER

EXAMPLES = json.loads((REPO / "tests" / "data" / "request_id_examples.json").read_text())
NGINX_ID = re.compile(r"[0-9a-f]{32}")
SEARCH_TEXT = "pangolin-saxophone-51b7"  # a user's search: in no log
STEADY_CLIENT = REPO / "testing" / "load" / "steady_client.py"
LOG_FIELDS = {
    "time", "client", "method", "path", "status", "bytes", "duration_s", "slot",
    "upstream_status", "request_id",
}  # fmt: skip


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    require_docker()
    with running_proxy(tmp_path_factory.mktemp("proxy")) as proxy:
        yield proxy


def request(
    base: str, method: str, path: str, headers: dict[str, Any] | None = None, body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request; header values may be bytes (sent as they are)."""
    url = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        connection.putrequest(
            method, path, skip_host="Host" in (headers or {}), skip_accept_encoding=True
        )
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body or None)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def received(
    proxy: Proxy, headers: dict[str, Any] | None = None
) -> tuple[dict[str, str], dict[str, Any]]:
    """(the answer's headers, what the slot got) for GET /echo."""
    status, answer_headers, body = request(proxy.url, "GET", "/echo", headers)
    assert status == 200, body
    echoed: dict[str, Any] = json.loads(body)
    return answer_headers, echoed


# ---- what the slot is told


def test_every_forwarded_request_is_marked_public(proxy: Proxy) -> None:
    _, echoed = received(proxy, {PUBLIC_HEADER: "0", "X-Forwarded-For": "203.0.113.9"})
    got = echoed["headers"]
    assert got.get(PUBLIC_HEADER.lower()) == "1", f"the slot got {got}"
    assert got["x-forwarded-for"] != "203.0.113.9", "a client-sent X-Forwarded-For passed"


def test_the_hosts_own_readyz_is_not_public(proxy: Proxy) -> None:
    inside = proxy.exec("curl", "-fsS", "http://127.0.0.1:8000/__nica/readyz")
    echoed = json.loads(inside.stdout)
    assert (echoed["path"], PUBLIC_HEADER.lower() in echoed["headers"]) == ("/readyz", False)
    status, _, _ = request(proxy.url, "GET", "/__nica/readyz")
    assert status == 403, "/__nica/readyz must not answer through the published port"


@pytest.mark.parametrize("value", EXAMPLES["accept"])
def test_a_well_formed_request_id_reaches_the_slot_and_comes_back(proxy: Proxy, value: str) -> None:
    answer, echoed = received(proxy, {"X-Request-ID": value})
    assert (echoed["headers"]["x-request-id"], answer["x-request-id"]) == (value, value)


@pytest.mark.parametrize("value", EXAMPLES["refuse"])
def test_a_malformed_request_id_is_replaced_by_the_proxys(proxy: Proxy, value: str) -> None:
    answer, echoed = received(proxy, {"X-Request-ID": value.encode("utf-8")})
    sent = echoed["headers"]["x-request-id"]
    assert NGINX_ID.fullmatch(sent) and answer["x-request-id"] == sent, (sent, answer)


def test_without_an_id_the_proxy_makes_one_the_slot_and_the_log_share(proxy: Proxy) -> None:
    answer, echoed = received(proxy)
    made = answer["x-request-id"]
    assert NGINX_ID.fullmatch(made) and echoed["headers"]["x-request-id"] == made
    assert proxy.access_line(made)["path"] == "/echo"


# ---- the access log


def test_the_access_log_is_one_json_object_per_request_without_the_query(proxy: Proxy) -> None:
    status, _, _ = request(
        proxy.url, "GET", f"/v1/search?q={SEARCH_TEXT}&k=3", {"X-Request-ID": "log-1"}
    )
    assert status == 200
    line = proxy.access_line("log-1")
    assert set(line) == LOG_FIELDS, f"fields: {sorted(line)}"
    assert (line["method"], line["path"], line["status"], line["slot"]) == (
        "GET",
        "/v1/search",
        200,
        "blue",
    )
    assert line["upstream_status"] == "200" and line["bytes"] > 0, line
    assert isinstance(line["duration_s"], float) and re.match(r"\d{4}-\d\d-\d\dT", line["time"])
    assert line["client"] == proxy.gateway(), line


def test_a_search_text_is_in_no_log_even_when_the_slot_is_down(tmp_path: Path) -> None:
    """nginx's error lines quote the request line: the error log stays at crit."""
    require_docker()
    with running_proxy(tmp_path, upstream="backend-green:8000") as down:
        status, _, body = request(down.url, "GET", f"/v1/search?q={SEARCH_TEXT}")
        stdout, stderr = down.logs()
    assert status == 502, body
    assert SEARCH_TEXT not in stdout + stderr, f"a search text was logged:\n{stdout}{stderr}"


# ---- the metrics server (port 9464)


def metrics_get(proxy: Proxy, path: str) -> tuple[int, str]:
    """(status, body) of GET path on the proxy's metrics port, from inside the container."""
    done = proxy.exec("curl", "-sS", "-w", "\n%{http_code}", f"http://127.0.0.1:9464{path}")
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def test_the_metrics_port_reaches_each_slot_and_the_serving_one(proxy: Proxy) -> None:
    # The stub answers as backend-blue on the metrics process's port too: it echoes the path.
    docker("exec", "-d", proxy.stub, "python3", "/stub.py", "9464")
    deadline = time.monotonic() + 15
    while metrics_get(proxy, "/slots/blue/metrics")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    for path, upstream_path in [
        ("/slots/blue/metrics", "/metrics"),
        ("/slots/blue/summary", "/summary"),
        ("/metrics", "/metrics"),  # the serving slot (upstream.conf: blue)
        ("/summary", "/summary"),
    ]:
        status, body = metrics_get(proxy, path)
        assert status == 200 and json.loads(body)["path"] == upstream_path, (path, status, body)
    # The idle slot's container is stopped between cut-overs: its target is down.
    assert metrics_get(proxy, "/slots/green/metrics")[0] == 502
    status, body = metrics_get(proxy, "/proxy/status")
    assert status == 200 and "Active connections" in body, body
    # Only those: no API, no other path of a slot.
    for path in ["/v1/models", "/slots/blue/readyz", "/slots/red/metrics", "/"]:
        assert metrics_get(proxy, path)[0] == 404, path


# ---- nginx's own answers in OpenAI's error shape


def openai_error(status: int, body: bytes) -> ErrorResponse:
    error = ErrorResponse.model_validate_json(body)
    expected_type = "server_error" if status >= 500 else "invalid_request_error"
    assert error.error.type == expected_type, body
    return error


def test_a_body_over_4_mib_is_413_in_openai_shape(proxy: Proxy) -> None:
    status, headers, body = request(
        proxy.url,
        "POST",
        "/v1/embeddings",
        {"Content-Type": "application/json"},
        b"x" * (4 * 1024 * 1024 + 1),
    )
    assert status == 413 and openai_error(status, body).error.code == "request_too_large", body
    assert NGINX_ID.fullmatch(headers["x-request-id"]), headers


def test_a_body_that_does_not_fit_in_tmp_is_refused_in_openai_shape(tmp_path: Path) -> None:
    """The container's /tmp (a sized tmpfs) full: the body is refused; nothing grows."""
    require_docker()
    tiny = {"tmpfs": "/tmp:size=1m"}  # noqa: S108 (the container's /tmp)
    with running_proxy(tmp_path, run_overrides=tiny) as small:
        status, _, body = request(small.url, "POST", "/v1/embeddings", {}, b" " * 2_000_000)
        fits, _, _ = request(small.url, "POST", "/v1/embeddings", {}, b'{"input": "x"}')
    assert status == 500 and openai_error(status, body).error.code == "proxy_busy", body
    assert fits == 200, "a small body (kept in memory) should still pass"


def test_a_slot_that_is_down_is_502_in_openai_shape(tmp_path: Path) -> None:
    require_docker()
    with running_proxy(tmp_path, upstream="backend-green:8000") as down:
        status, _, body = request(down.url, "GET", "/v1/models")
    assert status == 502 and openai_error(status, body).error.code == "backend_unavailable"


# ---- per-client limits


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """Limits a test can reach: 2 requests/s with a burst of 2, 1 large body at a time."""
    require_docker()
    config = {
        "rate=500r/s": "rate=2r/s",
        "burst=1000 nodelay": "burst=2 nodelay",
        "limit_conn nica_large_bodies 16;": "limit_conn nica_large_bodies 1;",
    }
    with running_proxy(tmp_path_factory.mktemp("strict"), config=config) as proxy:
        yield proxy


def test_too_many_requests_are_429_with_retry_after_in_openai_shape(strict: Proxy) -> None:
    time.sleep(2)  # a full bucket
    answers = [request(strict.url, "GET", "/v1/models") for _ in range(6)]
    limited = [(headers, body) for status, headers, body in answers if status == 429]
    assert len(limited) >= 2, f"statuses: {[a[0] for a in answers]}"
    headers, body = limited[0]
    assert headers.get("retry-after") == "1", headers
    assert openai_error(429, body).error.code == "rate_limit_exceeded"
    assert NGINX_ID.fullmatch(headers.get("x-request-id", "")), headers


def test_the_openai_sdk_raises_rate_limit_error(strict: Proxy) -> None:
    client = openai.OpenAI(base_url=f"{strict.url}/v1", api_key="k", max_retries=0)
    with client, pytest.raises(openai.RateLimitError) as caught:
        for _ in range(10):
            client.models.list()
    assert caught.value.code == "rate_limit_exceeded"


def held_body(base: str, path: str = "/v1/embeddings", size: int = 1_000_000) -> socket.socket:
    """A connection that declared a `size`-byte body and sent all of it but the last byte."""
    url = urllib.parse.urlsplit(base)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n"
    sock.sendall(head.encode() + b" " * (size - 1))
    return sock


def test_a_second_large_body_at_once_is_429_while_small_requests_pass(strict: Proxy) -> None:
    time.sleep(2)  # a full bucket: the rate limit lets these three pass
    held = held_body(strict.url)
    try:
        time.sleep(1)  # the held request is in progress
        second, _, body = request(strict.url, "POST", "/v1/echo", {}, b"y" * 20_000)
        small, _, _ = request(strict.url, "POST", "/v1/echo", {}, b"y" * 100)
    finally:
        held.close()
    assert (second, small) == (429, 200), body


# ---- TLS


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    ca = load_test_ca()
    directory = tmp_path_factory.mktemp("ca")
    return {
        "ca": directory / "ca.pem",
        "first": ca.issue(directory, ["nica.test"], ["127.0.0.1"], prefix="first"),
        "second": ca.issue(directory, ["nica.test"], ["127.0.0.1"], prefix="second"),
        "other_key": ca.issue(directory, ["other.test"], [], prefix="other").key,
    }


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory, certificates: dict[str, Any]) -> Iterator[Proxy]:
    require_docker()
    files = {
        "tls.conf": PROXY_DIR / "tls.conf",
        "certificate.pem": certificates["first"].certificate,
    }
    with running_proxy(
        tmp_path_factory.mktemp("tls"), tls_files=files, key=certificates["first"].key
    ) as proxy:
        yield proxy


def handshake(
    proxy: Proxy, ca: Path, version: ssl.TLSVersion | None = None, ciphers: str | None = None
) -> tuple[str, str, bytes]:
    """(TLS version, cipher, the server certificate) of one handshake; ssl.SSLError if refused.
    The client offers anything its OpenSSL can (security level 0), so the server decides."""
    assert proxy.tls_url is not None
    url = urllib.parse.urlsplit(proxy.tls_url)
    context = ssl.create_default_context(cafile=str(ca))
    context.set_ciphers(ciphers or "DEFAULT:@SECLEVEL=0")
    if version is not None:
        context.minimum_version = context.maximum_version = version
    raw = socket.create_connection((url.hostname, url.port), timeout=10)
    with raw, context.wrap_socket(raw, server_hostname="127.0.0.1") as wrapped:
        cipher = wrapped.cipher()
        certificate = wrapped.getpeercert(binary_form=True)
        assert cipher is not None and certificate is not None
        return str(wrapped.version()), cipher[0], certificate


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["1.2", "1.3"]
)
def test_tls_1_2_and_1_3_are_served(
    tls: Proxy, certificates: dict[str, Any], version: ssl.TLSVersion
) -> None:
    assert handshake(tls, certificates["ca"], version)[0] == f"TLSv1.{str(version.name)[-1]}"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_1_1_is_refused(tls: Proxy, certificates: dict[str, Any]) -> None:
    with pytest.raises(ssl.SSLError, match=r"PROTOCOL_VERSION|protocol version"):
        handshake(tls, certificates["ca"], ssl.TLSVersion.TLSv1_1)


def test_a_tls_1_2_cipher_without_aead_is_refused(tls: Proxy, certificates: dict[str, Any]) -> None:
    with pytest.raises(ssl.SSLError, match=r"HANDSHAKE_FAILURE|handshake failure"):
        handshake(
            tls, certificates["ca"], ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"
        )


def steady_over_https(
    tls: Proxy, ca: Path, workdir: Path, seconds: float, stop_after: float | None = None
) -> subprocess.Popen[str]:
    assert tls.tls_url is not None
    command = [
        sys.executable, str(STEADY_CLIENT), "--url", tls.tls_url, "--model", "stub",
        "--out", str(workdir / "steady.json"), "--stop-file", str(workdir / "steady.stop"),
        "--ca-file", str(ca), "--max-seconds", str(seconds),
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def steady_result(process: subprocess.Popen[str], workdir: Path) -> dict[str, Any]:
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    result: dict[str, Any] = json.loads((workdir / "steady.json").read_text())
    return result


def replace_pair(tls: Proxy, certificate: Path, key: Path) -> None:
    """As a deployment rotates: each file replaced by a rename in its mounted directory."""
    tls_dir = tls.config_dir / "tls"
    (tls_dir / "certificate.pem.new").write_bytes(certificate.read_bytes())
    (tls_dir / "certificate.pem.new").chmod(0o644)
    (tls_dir / "certificate.pem.new").rename(tls_dir / "certificate.pem")
    key_dir = tls.config_dir.parent / "proxy-key"
    (key_dir / "private_key.pem.new").write_bytes(key.read_bytes())
    subprocess.run(["chown", "65534:65534", str(key_dir / "private_key.pem.new")], check=True)
    (key_dir / "private_key.pem.new").chmod(0o400)
    (key_dir / "private_key.pem.new").rename(key_dir / "private_key.pem")


def test_a_certificate_rotates_by_reload_with_no_request_failing(
    tls: Proxy, certificates: dict[str, Any], tmp_path: Path
) -> None:
    before = handshake(tls, certificates["ca"])[2]
    client = steady_over_https(tls, certificates["ca"], tmp_path, seconds=6)
    time.sleep(2)
    replace_pair(tls, certificates["second"].certificate, certificates["second"].key)
    tls.reload()
    result = steady_result(client, tmp_path)
    after = handshake(tls, certificates["ca"])[2]
    assert (result["failed"], result["sent"] > 20) == (0, True), result
    assert before != after, "the proxy still serves the first certificate"
    assert after == ssl.PEM_cert_to_DER_cert(certificates["second"].certificate.read_text())


def test_a_pair_that_does_not_match_is_refused_and_the_proxy_keeps_serving(
    tls: Proxy, certificates: dict[str, Any]
) -> None:
    served = handshake(tls, certificates["ca"])[2]
    replace_pair(tls, certificates["first"].certificate, certificates["other_key"])
    try:
        check = tls.exec("nginx", "-t", "-c", "/etc/nica-proxy/nginx.conf")
        tls.exec("nginx", "-c", "/etc/nica-proxy/nginx.conf", "-s", "reload")  # refused inside
        time.sleep(1)
        assert check.returncode != 0 and "key values mismatch" in check.stderr, check.stderr
        assert handshake(tls, certificates["ca"])[2] == served, "the serving pair changed"
        status, _, _ = request(tls.url, "GET", "/v1/models")
        assert status == 200
    finally:
        replace_pair(tls, certificates["second"].certificate, certificates["second"].key)


def test_without_tls_files_nothing_listens_on_8443(proxy: Proxy) -> None:
    done = proxy.exec("curl", "-sk", "https://127.0.0.1:8443/")
    assert done.returncode == 7, f"expected curl's 'could not connect' (7), got {done.returncode}"


def test_plain_http_redirects_to_https_but_the_hosts_calls_stay(
    tmp_path: Path, certificates: dict[str, Any]
) -> None:
    require_docker()
    files = {
        "tls.conf": PROXY_DIR / "tls.conf",
        "tls-redirect.conf": PROXY_DIR / "tls-redirect.conf",
        "certificate.pem": certificates["first"].certificate,
    }
    with running_proxy(tmp_path, tls_files=files, key=certificates["first"].key) as proxy:
        status, headers, _ = request(
            proxy.url, "POST", "/v1/embeddings?x=1", {"Host": "nica.test"}, b"{}"
        )
        slot = proxy.exec("curl", "-fsS", "http://127.0.0.1:8000/__nica/slot")
        over_tls = handshake(proxy, certificates["ca"])[0]
    assert (status, headers.get("location")) == (308, "https://nica.test:8443/v1/embeddings?x=1")
    assert (slot.stdout, over_tls) == ("blue\n", "TLSv1.3")
