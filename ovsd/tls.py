"""The cluster CA and this node's certificate, and the TLS options built from them.

Material is created once and never overwritten: a node that already has a CA keeps it, because every
peer and every client trusts exactly that CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.iweb import IPolicyForHTTPS

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
NODE_CERT = "node.pem"
NODE_KEY = "node.key"

#: TLS 1.2 suites the API offers: forward-secret key exchange with an AEAD cipher only (no CBC, whose
#: MAC-then-encrypt padding gave Lucky13 and POODLE-style oracles). TLS 1.3 suites are all AEAD and are
#: configured apart by OpenSSL, so this list leaves them as they are.
SERVER_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


@dataclass(frozen=True)
class TlsPaths:
    """Where a node keeps its TLS material (``<data_dir>/tls``)."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / CA_CERT

    @property
    def ca_key(self) -> Path:
        return self.directory / CA_KEY

    @property
    def node_cert(self) -> Path:
        return self.directory / NODE_CERT

    @property
    def node_key(self) -> Path:
        return self.directory / NODE_KEY


def _write_private(path: Path, data: bytes) -> None:
    """Write a key so that it is never readable by others, not even for an instant."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _write_public(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _create_ca(paths: TlsPaths, cluster_name: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"ovsd cluster CA {cluster_name}")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(paths.ca_key, _key_pem(key))
    _write_public(paths.ca_cert, cert.public_bytes(serialization.Encoding.PEM))


def subject_alt_names(node_ip: str, node_name: str) -> list[x509.GeneralName]:
    """The names a client may use to reach this node: its ip, loopback, localhost, its names."""
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    for ip in (node_ip, "127.0.0.1", "::1"):
        if ip not in seen:
            seen.add(ip)
            names.append(x509.IPAddress(ipaddress.ip_address(ip)))
    for dns in ("localhost", socket.gethostname(), node_name):
        if dns and dns not in seen:
            try:
                ipaddress.ip_address(dns)
                continue  # a name that is an address was added above (or is not ours to claim)
            except ValueError:
                pass
            seen.add(dns)
            names.append(x509.DNSName(dns))
    return names


def _create_node_cert(paths: TlsPaths, node_ip: str, node_name: str) -> None:
    ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(subject_alt_names(node_ip, node_name)), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(paths.node_key, _key_pem(key))
    _write_public(paths.node_cert, cert.public_bytes(serialization.Encoding.PEM))


def ensure_material(directory: Path, node_ip: str, node_name: str) -> list[Path]:
    """Create whatever TLS material is missing; return the files created (existing ones are kept)."""
    paths = TlsPaths(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    created: list[Path] = []
    if not paths.ca_cert.exists() or not paths.ca_key.exists():
        if paths.ca_cert.exists() or paths.ca_key.exists():
            raise RuntimeError(f"{directory}: half a CA (certificate or key missing); refusing to replace it")
        _create_ca(paths, node_name)
        created += [paths.ca_key, paths.ca_cert]
    if not paths.node_cert.exists() or not paths.node_key.exists():
        if paths.node_cert.exists() or paths.node_key.exists():
            raise RuntimeError(f"{directory}: half a node certificate; refusing to replace it")
        _create_node_cert(paths, node_ip, node_name)
        created += [paths.node_key, paths.node_cert]
    return created


def server_options(directory: Path) -> ssl.CertificateOptions:
    """TLS 1.2+ server options presenting the node certificate (with the CA in the chain), AEAD suites only."""
    paths = TlsPaths(directory)
    node = ssl.PrivateCertificate.loadPEM(paths.node_cert.read_bytes() + paths.node_key.read_bytes())
    ca = ssl.Certificate.loadPEM(paths.ca_cert.read_bytes())
    return ssl.CertificateOptions(
        privateKey=node.privateKey.original,
        certificate=node.original,
        extraCertChain=[ca.original],
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
        acceptableCiphers=ssl.AcceptableCiphers.fromOpenSSLCipherString(SERVER_CIPHERS),
    )


def trust_root(ca_pem: bytes) -> ssl.Certificate:
    return ssl.Certificate.loadPEM(ca_pem)


def client_policy(ca_pem: bytes) -> IPolicyForHTTPS:
    """An HTTPS policy for treq/Agent that trusts only the cluster CA."""
    return BrowserLikePolicyForHTTPS(trustRoot=trust_root(ca_pem))


def client_options(hostname: str, ca_pem: bytes) -> IOpenSSLClientConnectionCreator:
    return ssl.optionsForClientTLS(hostname, trustRoot=trust_root(ca_pem))
