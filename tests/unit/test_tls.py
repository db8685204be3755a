"""TLS material: created once, keys 0600, the names a client uses, never overwritten; TLS 1.2+ only."""

from __future__ import annotations

import ipaddress
import socket
import stat
from pathlib import Path

from cryptography import x509
from OpenSSL import SSL

from ovsd import tls


def test_material_is_created_with_private_keys_0600(tmp_path: Path) -> None:
    created = tls.ensure_material(tmp_path / "tls", "10.1.2.3", "ovs100")
    assert {p.name for p in created} == {"ca.pem", "ca.key", "node.pem", "node.key"}
    for name in ("ca.key", "node.key"):
        assert stat.S_IMODE((tmp_path / "tls" / name).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700


def test_node_certificate_names_and_chain(tmp_path: Path) -> None:
    tls.ensure_material(tmp_path, "10.1.2.3", "ovs100")
    cert = x509.load_pem_x509_certificate((tmp_path / "node.pem").read_bytes())
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    dns = set(san.get_values_for_type(x509.DNSName))
    assert ips == {"10.1.2.3", "127.0.0.1", "::1"}
    assert {"localhost", socket.gethostname(), "ovs100"} <= dns
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    assert ipaddress.ip_address("::1") in san.get_values_for_type(x509.IPAddress)


def test_existing_material_is_never_overwritten(tmp_path: Path) -> None:
    tls.ensure_material(tmp_path, "10.1.2.3", "ovs100")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert tls.ensure_material(tmp_path, "10.9.9.9", "other") == []
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    # a lost node certificate is re-issued by the same CA, the CA itself is kept
    (tmp_path / "node.pem").unlink()
    (tmp_path / "node.key").unlink()
    created = tls.ensure_material(tmp_path, "10.1.2.3", "ovs100")
    assert {p.name for p in created} == {"node.pem", "node.key"}
    assert (tmp_path / "ca.pem").read_bytes() == before["ca.pem"]


def test_server_refuses_tls_below_1_2(tmp_path: Path) -> None:
    tls.ensure_material(tmp_path, "127.0.0.1", "n")
    context = tls.server_options(tmp_path).getContext()
    options = context.set_options(0)  # ORs nothing in, returns the options in force
    assert options & SSL.OP_NO_TLSv1
    assert options & SSL.OP_NO_TLSv1_1
    assert not options & SSL.OP_NO_TLSv1_2
