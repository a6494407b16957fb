"""TLS at the proxy, with a CA made by the test (conftest's tls_pki, on the controller),
the certificates handed to Ansible in a vars file as an operator's vault would:
1. deploy.yml turns TLS on (a steady client on plain HTTP beside it: the proxy is
   recreated once, for its new port; what that costs is recorded): HTTPS answers on the
   published TLS port with TLS 1.2 and 1.3, and refuses TLS 1.1; the same release and the
   same backend container serve, plain HTTP too;
2. a rotation to a second certificate of the same CA, `deploy.yml --tags backend_tls`,
   under a steady client through HTTPS (--ca-file): 0 failed, the same proxy container;
3. an expired certificate, then a key that does not match, each refused with one line
   naming the variable (-vvv), the host's files unchanged and the proxy still serving the
   second certificate;
4. status.yml shows when it expires, with the warning (it has 10 days).
TLS stays on (the last story): the checks after it see the proxy with its TLS port and
key (test_hardening, test_config, test_model_cache, test_secrets_in_output)."""

from __future__ import annotations

import hashlib
import json
import shlex
import ssl
from typing import Any

import pytest
from runs import (
    Run,
    ansible_playbook,
    deploy,
    inspect,
    playbook,
    record,
    serving,
    sh,
    steady_client,
    vars_file,
)

CA_FILE = "/usr/local/share/nica-test-ca.pem"
TLS_URL = "https://127.0.0.1:8443"
CERTIFICATE = "/opt/nica/compose/proxy/tls/certificate.pem"
KEY = "/opt/nica/compose/proxy-key/private_key.pem"
PROXY = "nica-proxy-1"

# One TLS handshake with the published TLS port from the host, at one protocol version:
# the version agreed and the sha256 of the certificate served, or the error. The client
# offers whatever its OpenSSL can (security level 0), so the server decides.
HANDSHAKE = """
import hashlib, json, socket, ssl, sys
context = ssl.create_default_context(cafile=sys.argv[1])
context.set_ciphers("DEFAULT:@SECLEVEL=0")
version = getattr(ssl.TLSVersion, sys.argv[2])
context.minimum_version = context.maximum_version = version
try:
    with socket.create_connection(("127.0.0.1", 8443), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            served = hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()
            print(json.dumps({"version": tls.version(), "certificate": served}))
except (ssl.SSLError, OSError) as error:
    print(json.dumps({"error": str(error)}))
"""


def handshake(host: Any, version: str = "TLSv1_3") -> dict[str, str]:
    out = sh(host, f"python3 -c {shlex.quote(HANDSHAKE)} {CA_FILE} {version}")
    return dict(json.loads(out))


def der_sha256(pem: str) -> str:
    """The sha256 of a certificate's DER form, as the handshake reports it."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def tls_vars(name: str, certificate: str, key: str) -> str:
    return vars_file(name, {"backend_tls_certificate": certificate, "backend_tls_private_key": key})


def state(host: Any) -> dict[str, Any]:
    """What a refused run must leave alone: the proxy's and the slot's containers, the
    release, the TLS files (by sha256) and what the proxy serves."""
    return {
        "proxy": inspect(host, PROXY)["Id"],
        "backend": inspect(host, serving(host))["Id"],
        "release": record(host)["release"],
        "files": sh(host, f"sha256sum {CERTIFICATE} {KEY}"),
        "served": handshake(host).get("certificate"),
    }


@pytest.fixture(scope="module")
def story(host: Any, tls_pki: dict[str, dict[str, str]]) -> dict[str, Any]:
    pki = tls_pki
    sh(host, f"printf '%s' {shlex.quote(pki['ca']['certificate'])} > {CA_FILE}")
    done: dict[str, Any] = {
        "before": {
            "proxy": inspect(host, PROXY)["Id"],
            "backend": inspect(host, serving(host))["Id"],
            "release": record(host)["release"],
        }
    }
    first = tls_vars("tls-first", pki["first"]["certificate"], pki["first"]["key"])
    with steady_client(host, "tls-on") as done["on_client"]:
        done["on"] = deploy("tls-on", "-e", first)
    done["after_on"] = {
        "proxy": inspect(host, PROXY)["Id"],
        "backend": inspect(host, serving(host))["Id"],
        "release": record(host)["release"],
    }
    done["versions"] = {v: handshake(host, v) for v in ("TLSv1_1", "TLSv1_2", "TLSv1_3")}

    second = tls_vars("tls-second", pki["second"]["certificate"], pki["second"]["key"])
    with steady_client(host, "tls-rotate", url=TLS_URL, options=f"--ca-file {CA_FILE}") as done[
        "rotate_client"
    ]:
        done["rotate"] = deploy("tls-rotate", "--tags", "backend_tls", "-e", second)
    done["after_rotate"] = state(host)

    refused = {
        "expired": tls_vars("tls-expired", pki["expired"]["certificate"], pki["expired"]["key"]),
        "mismatch": tls_vars("tls-mismatch", pki["second"]["certificate"], pki["other"]["key"]),
    }
    done["refused"] = {}
    for name, variables in refused.items():
        run = deploy(f"tls-{name}", "-vvv", "--tags", "backend_tls", "-e", variables)
        done["refused"][name] = (run, state(host))
    done["status"] = ansible_playbook("tls-status", playbook("status"))
    done["fingerprints"] = {
        name: der_sha256(pki[name]["certificate"]) for name in ("first", "second")
    }
    return done


def test_turning_tls_on_deploys(story):
    assert story["on"].rc == 0, story["on"]


def test_turning_tls_on_is_not_a_new_release_and_keeps_the_backend(story):
    before, after = story["before"], story["after_on"]
    assert (after["release"], after["backend"]) == (before["release"], before["backend"]), (
        f"turning TLS on replaced the release or its container: {before} -> {after}"
    )


def test_turning_tls_on_recreates_the_proxy_once_and_says_what_it_cost(story):
    # The new port is a new container (docs/security.md says so, with this figure).
    assert story["after_on"]["proxy"] != story["before"]["proxy"], "the proxy was not recreated"
    client = story["on_client"]
    print(
        f"turning TLS on: {client['failed']} of {client['sent']} requests failed, "
        f"longest gap {client['longest_gap_s']} s"
    )
    assert client["longest_gap_s"] < 5, (
        f"the recreate left {client['longest_gap_s']} s without an answer"
    )


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_https_answers_with_tls_1_2_and_1_3(story, version):
    answer = story["versions"][version]
    assert answer.get("version") == version.replace("_", "."), answer
    assert answer["certificate"] == story["fingerprints"]["first"], "not the first certificate"


def test_a_tls_1_1_handshake_is_refused(story):
    answer = story["versions"]["TLSv1_1"]
    assert "error" in answer, f"TLS 1.1 was accepted: {answer}"


def test_the_rotation_through_https_fails_no_request(story):
    assert story["rotate"].rc == 0, story["rotate"]
    client = story["rotate_client"]
    assert client["sent"] > 0 and client["failed"] == 0, f"through HTTPS: {client}"


def test_the_rotation_is_a_reload_not_a_new_proxy(story):
    after = story["after_rotate"]
    assert after["served"] == story["fingerprints"]["second"], (
        "the proxy does not serve the second certificate"
    )
    assert after["proxy"] == story["after_on"]["proxy"], "the rotation recreated the proxy"
    assert after["release"] == story["after_on"]["release"], "the rotation made a new release"


@pytest.mark.parametrize(
    ("case", "line"),
    [
        ("expired", "backend_tls_certificate (nica.test) expired on "),
        ("mismatch", "backend_tls_private_key does not match backend_tls_certificate (nica.test)"),
    ],
)
def test_a_bad_pair_is_refused_naming_the_variable(story, case, line):
    run: Run = story["refused"][case][0]
    assert run.rc != 0, f"the {case} pair was accepted: {run}"
    assert line in run.said(), f"expected {line!r} in: {run.tail()}"


@pytest.mark.parametrize("case", ["expired", "mismatch"])
def test_a_refused_pair_leaves_the_host_and_the_served_certificate(story, case):
    assert story["refused"][case][1] == story["after_rotate"], (
        f"the refused {case} pair changed the host: "
        f"{story['after_rotate']} -> {story['refused'][case][1]}"
    )


def test_status_shows_the_expiry_and_warns_under_14_days(story):
    status: Run = story["status"]
    assert status.rc == 0, status
    said = status.said()
    assert "tls: for nica.test, expires " in said and "WARNING: less than 14 days left" in said, (
        f"no TLS expiry with its warning in status.yml: {status.tail()}"
    )


def test_the_key_is_the_proxy_users_alone(host):
    directory, key = host.file(KEY.rsplit("/", 1)[0]), host.file(KEY)
    assert (directory.uid, directory.mode) == (65534, 0o700), (
        f"{directory.path}: {directory.uid} {oct(directory.mode)}"
    )
    assert (key.uid, key.mode) == (65534, 0o400), f"{KEY}: {key.uid} {oct(key.mode)}"
