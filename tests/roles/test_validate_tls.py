"""roles/backend_common's TLS preflight (tasks/validate_tls.yml, part of validate.yml), run
for real in ansible-playbook on localhost: a pair nginx could not load or clients would
refuse is refused before any host changes; a good pair, or none, passes."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .loader import load
from .test_validate import REPO, run_validate

make_test_ca = load("make_test_ca", REPO / "testing" / "tls" / "make_test_ca.py")


def not_yet_valid(directory: Path) -> str:
    """A certificate of the test CA whose validity starts tomorrow (PEM)."""
    ca_cert, ca_key = make_test_ca.ensure_ca(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "later.test")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(ca_key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode() + "\n" + pem.decode()


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bool]:
    directory = tmp_path_factory.mktemp("ca")
    pairs = {
        name: make_test_ca.issue(directory, ["nica.test"], ["127.0.0.1"], prefix=name, **options)
        for name, options in {"good": {}, "expired": {"expired": True}, "other": {}}.items()
    }
    cert = {name: pair.certificate.read_text() for name, pair in pairs.items()}
    key = {name: pair.key.read_text() for name, pair in pairs.items()}
    later_cert, later_key = not_yet_valid(directory).split("\n\n")
    tls = "backend_tls_certificate", "backend_tls_private_key"
    cases: dict[str, dict[str, Any]] = {
        "accept: TLS off": {},
        "accept: a good pair": dict(zip(tls, (cert["good"], key["good"]), strict=True)),
        "accept: a good pair on a public address, no API keys": {
            **dict(zip(tls, (cert["good"], key["good"]), strict=True)),
            "backend_publish_address": "10.1.2.3",
        },
        "accept: a good pair, the redirect on, port 443": {
            **dict(zip(tls, (cert["good"], key["good"]), strict=True)),
            "backend_tls_redirect_http": True,
            "backend_tls_publish_port": 443,
        },
        "refuse: expired": dict(zip(tls, (cert["expired"], key["expired"]), strict=True)),
        "refuse: not yet valid": dict(zip(tls, (later_cert, later_key), strict=True)),
        "refuse: the key of another certificate": dict(
            zip(tls, (cert["good"], key["other"]), strict=True)
        ),
        "refuse: no key": {"backend_tls_certificate": cert["good"]},
        "refuse: a key, no certificate": {"backend_tls_private_key": key["good"]},
        "refuse: not PEM": dict(
            zip(tls, ("-----BEGIN CERTIFICATE-----\nxx\n", key["good"]), strict=True)
        ),
        "refuse: a key that is not PEM": dict(zip(tls, (cert["good"], "not a key"), strict=True)),
        "refuse: the key pasted into the certificate": dict(
            zip(tls, (cert["good"] + key["good"], key["good"]), strict=True)
        ),
        "refuse: the redirect without TLS": {"backend_tls_redirect_http": True},
        "refuse: the TLS port is the plain one": {
            **dict(zip(tls, (cert["good"], key["good"]), strict=True)),
            "backend_tls_publish_port": 8000,
        },
    }
    return run_validate(directory, cases)


def test_each_case(verdicts: dict[str, bool]) -> None:
    wrong = [name for name, accepted in verdicts.items() if accepted != name.startswith("accept")]
    assert wrong == [], f"the TLS preflight decided these cases wrongly: {wrong}"
