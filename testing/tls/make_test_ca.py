#!/usr/bin/env python3
"""A throwaway CA and server certificates it signs, for tests of TLS (never for production).

    make_test_ca.py DIR [--name nica.test] [--ip 127.0.0.1] [--days 30 | --expired] \
        [--prefix server]

writes into DIR (created, 0700): ca.pem (the CA certificate: what clients trust), and
PREFIX.pem + PREFIX.key (the server's certificate and its private key, PEM, key 0600) for
the DNS name(s) --name and address(es) --ip. Run again with another --prefix to issue a
second certificate from the same CA (a rotation); --expired makes one whose validity ended
yesterday. ECDSA P-256 keys, SHA-256 signatures. Needs the `cryptography` package (the
controller's venv has it: Ansible depends on it).
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT = "ca.pem"
CA_KEY = "ca.key"


@dataclass(frozen=True)
class Issued:
    certificate: Path
    key: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def ensure_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA of `directory`, made on first use."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("nica test CA"))
        .issuer_name(_name("nica test CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return certificate, key


def issue(
    directory: Path,
    names: list[str],
    ips: list[str],
    days: int = 30,
    expired: bool = False,
    prefix: str = "server",
) -> Issued:
    """A server certificate for `names` and `ips`, signed by the CA of `directory`."""
    ca_cert, ca_key = ensure_ca(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    if expired:
        not_before, not_after = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
    else:
        not_before, not_after = (
            now - datetime.timedelta(hours=1),
            now + datetime.timedelta(days=days),
        )
    alternatives: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    alternatives += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0] if names else ips[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # Python 3.13's default context verifies strictly (VERIFY_X509_STRICT), as Debian 13's
        # python3 does: a certificate without the key identifiers is refused there.
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    issued = Issued(directory / f"{prefix}.pem", directory / f"{prefix}.key")
    _write_key(issued.key, key)
    issued.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return issued


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--name", action="append", default=[], help="DNS name (repeatable)")
    parser.add_argument("--ip", action="append", default=[], help="IP address (repeatable)")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--expired", action="store_true")
    parser.add_argument("--prefix", default="server")
    args = parser.parse_args(argv)
    names = args.name or ([] if args.ip else ["nica.test"])
    ips = args.ip or ([] if args.name else ["127.0.0.1"])
    try:
        issued = issue(args.directory, names, ips, args.days, args.expired, args.prefix)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{issued.certificate} {issued.key} (CA: {args.directory / CA_CERT})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
