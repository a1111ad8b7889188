"""vigie.pki: the CA of the secure profile, checked with cryptography and Python's ssl."""

from __future__ import annotations

import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.config import load
from gateway.errors import ConfigError
from vigie.pki import (
    INGEST_IDENTITY,
    PkiError,
    PkiPaths,
    acl_text,
    init_pki,
    issue_gateway,
    issue_service,
    load_pki,
    revoke,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    paths = init_pki(tmp_path_factory.mktemp("pki") / "pki", hosts=["mqtt.example.org",
                                                                       "10.1.2.3"])
    issue_gateway(paths, "gw-a")
    return paths


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def _usages(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_private_keys_are_readable_by_the_owner_only(pki: PkiPaths) -> None:
    keys = [pki.ca_key, pki.broker_key, pki.gateway("gw-a").key,
            pki.service(INGEST_IDENTITY).key]
    assert all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)


def test_every_certificate_is_signed_by_the_ca(pki: PkiPaths) -> None:
    ca = _cert(pki.ca_cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for path in (pki.broker_cert, pki.gateway("gw-a").cert, pki.service(INGEST_IDENTITY).cert):
        _cert(path).verify_directly_issued_by(ca)
    assert pki.gateway("gw-a").ca.read_bytes() == pki.ca_cert.read_bytes()


def test_broker_certificate_names_loopback_and_extra_hosts(pki: PkiPaths) -> None:
    cert = _cert(pki.broker_cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "mqtt.example.org"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == [
        "127.0.0.1", "::1", "10.1.2.3"]
    assert _usages(cert) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_client_certificates_carry_the_identity_and_client_usage_only(pki: PkiPaths) -> None:
    gw = _cert(pki.gateway("gw-a").cert)
    assert _cn(gw) == "gw-a" and _usages(gw) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert _cn(_cert(pki.service(INGEST_IDENTITY).cert)) == INGEST_IDENTITY
    assert pki.gateways() == ["gw-a"] and pki.services() == [INGEST_IDENTITY]


def test_python_ssl_loads_the_credentials(pki: PkiPaths) -> None:
    cred = pki.gateway("gw-a")
    ctx = ssl.create_default_context(cafile=str(cred.ca))
    ctx.load_cert_chain(cred.cert, cred.key)


def test_an_existing_ca_is_never_overwritten(pki: PkiPaths) -> None:
    with pytest.raises(PkiError, match="already holds a CA"):
        init_pki(pki.root)
    with pytest.raises(PkiError, match="not a Vigie PKI"):
        load_pki(pki.root / "nowhere")


@pytest.mark.parametrize("name", ["bad id", "gw/b", "+", "#", ""])
def test_gateway_ids_must_be_contract_ids(pki: PkiPaths, name: str) -> None:
    with pytest.raises(PkiError):
        issue_gateway(pki, name)


def test_gateways_and_services_never_share_an_identity(pki: PkiPaths) -> None:
    with pytest.raises(PkiError, match="service identity"):
        issue_gateway(pki, INGEST_IDENTITY)
    with pytest.raises(PkiError):
        issue_service(pki, "gw-a")
    with pytest.raises(PkiError, match="invalid service name"):
        issue_service(pki, "ingest")


def test_rotation_keeps_the_old_certificate_to_revoke_it(tmp_path: Path) -> None:
    paths = init_pki(tmp_path / "pki")
    first = _cert(issue_gateway(paths, "gw-r").cert)
    with pytest.raises(PkiError, match="--force"):
        issue_gateway(paths, "gw-r")
    cred = issue_gateway(paths, "gw-r", force=True)
    second = _cert(cred.cert)
    assert second.serial_number != first.serial_number
    old = cred.cert.with_name(f"client-{first.serial_number:x}.crt")
    assert _cert(old).serial_number == first.serial_number
    assert revoke(paths, old) == first.serial_number
    assert revoke(paths, old) == first.serial_number  # idempotent
    crl = x509.load_pem_x509_crl(paths.crl.read_bytes())
    assert crl.is_signature_valid(_cert(paths.ca_cert).public_key())  # type: ignore[arg-type]
    assert [r.serial_number for r in crl] == [first.serial_number]
    assert crl.next_update_utc is not None and crl.next_update_utc >= \
        _cert(paths.ca_cert).not_valid_after_utc


def test_a_foreign_certificate_cannot_be_revoked(pki: PkiPaths, tmp_path: Path) -> None:
    other = init_pki(tmp_path / "other")
    with pytest.raises(PkiError, match="not issued by this CA"):
        revoke(pki, other.service(INGEST_IDENTITY).cert)


def test_acl_confines_gateways_to_their_own_topics(pki: PkiPaths) -> None:
    acl = acl_text(pki).splitlines()
    assert "pattern write vigie/v1/gateways/%u/observations" in acl
    assert "pattern write vigie/v1/gateways/%u/status" in acl
    assert "pattern write vigie/v1/gateways/%u/alarms" in acl  # paged on site (edge alarms)
    assert "pattern read vigie/v1/gateways/%u/config/#" in acl
    assert "pattern read vigie/v1/gateways/%u/stored" in acl  # the cloud's confirmations
    assert [line for line in acl if line.startswith("pattern")] == acl[1:6], \
        "gateways get nothing else"
    block = acl[acl.index(f"user {INGEST_IDENTITY}"):]
    assert "topic write vigie/v1/gateways/+/stored" in block
    assert "topic read $share/+/vigie/v1/gateways/+/observations" in block
    assert "topic read vigie/v1/gateways/+/status" in block
    assert "topic read $share/+/vigie/v1/gateways/+/alarms" in block


def test_gateway_config_takes_tls_files_relative_to_itself(pki: PkiPaths,
                                                           tmp_path: Path) -> None:
    cred = pki.gateway("gw-a")
    for f in (cred.ca, cred.cert, cred.key):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    cfg = tmp_path / "gw.toml"
    cfg.write_text('[gateway]\nid = "gw-a"\n[mqtt]\nport = 8883\ntls_ca = "ca.crt"\n'
                   'tls_cert = "client.crt"\ntls_key = "client.key"\n')
    mqtt = load(cfg).mqtt
    assert (mqtt.tls_ca, mqtt.tls_cert, mqtt.tls_key) == (
        str(tmp_path / "ca.crt"), str(tmp_path / "client.crt"), str(tmp_path / "client.key"))
    plain = tmp_path / "plain.toml"
    plain.write_text('[gateway]\nid = "gw-a"\n')
    assert load(plain).mqtt.tls_ca is None


@pytest.mark.parametrize("mqtt", ['tls_ca = "missing.crt"', 'tls_cert = "client.crt"',
                                  'tls_ca = "ca.crt"\ntls_cert = "client.crt"'])
def test_bad_tls_settings_are_config_errors(pki: PkiPaths, tmp_path: Path, mqtt: str) -> None:
    cred = pki.gateway("gw-a")
    for f in (cred.ca, cred.cert):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    cfg = tmp_path / "gw.toml"
    cfg.write_text(f'[gateway]\nid = "gw-a"\n[mqtt]\n{mqtt}\n')
    with pytest.raises(ConfigError):
        load(cfg)


def test_pki_commands(tmp_path: Path) -> None:
    def vigie(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vigie", "pki", *args],
                              capture_output=True, text=True, timeout=60)

    root = tmp_path / "pki"
    assert vigie("init", str(root), "--host", "mqtt.example.org").returncode == 0
    out = vigie("gateway", str(root), "gw-cli")
    assert out.returncode == 0 and out.stdout.strip() == str(root / "gateways" / "gw-cli")
    again = vigie("gateway", str(root), "gw-cli")
    assert again.returncode == 2 and "--force" in again.stderr
    assert vigie("gateway", str(root), "gw-cli", "--force").returncode == 0
    old = next((root / "gateways" / "gw-cli").glob("client-*.crt"))
    assert vigie("revoke", str(root), str(old)).stdout.startswith("revoked serial")
    assert vigie("service", str(root), "vigie-ingest-2").returncode == 0
    assert load_pki(root).services() == [INGEST_IDENTITY, "vigie-ingest-2"]
