"""Certificates of the ``secure`` transport profile: a private CA, the broker, one per client.

Why client certificates (mutual TLS) and not usernames and passwords:

- the identity is what the broker already verified during the TLS handshake: Mosquitto takes
  the certificate's common name as the MQTT username (``use_identity_as_username``) and as the
  client id (``use_username_as_clientid``), so a gateway cannot claim another gateway's name,
  nor take over its persistent session, whatever it puts in CONNECT;
- a gateway holds a private key that never leaves it, not a shared secret that also sits in a
  broker-side password file: nothing to leak from the broker, nothing to type into a TOML file;
- a credential is revoked without touching the others (certificate revocation list) and
  expires on its own.

The cost is a small CA to run; this module is that CA (``vigie pki ...``). Passwords stay
possible for third-party brokers but are not part of this profile.

Layout of a PKI directory::

    ca.crt  ca.key            the CA (keep ca.key offline in production)
    crl.pem                   revoked client certificates, signed by the CA
    broker/broker.crt .key    server certificate (localhost, 127.0.0.1, ::1, extra names)
    gateways/<id>/            client.crt client.key ca.crt: what one gateway needs
    services/<name>/          the same for ingest workers (``vigie-ingest-1`` at init)

Private keys are written 0600. Gateway certificates only carry the ``clientAuth`` usage and
the broker's only ``serverAuth``, so neither can stand in for the other. The broker
configuration is derived from the directory (``acl_text``): gateways by pattern (adding one
needs no broker change), services by name (adding one needs a broker restart or SIGHUP).

Errors: ``PkiError`` (usage: bad name, missing or existing directory, unknown identity).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vigie.contract import TOPIC_PREFIX, ContractError, check_id

__all__ = ["INGEST_IDENTITY", "Credential", "PkiError", "PkiPaths", "acl_text",
           "init_pki", "issue_gateway", "issue_service", "load_pki", "revoke"]

INGEST_IDENTITY = "vigie-ingest-1"
CA_DAYS = 3650
BROKER_DAYS = 825
CLIENT_DAYS = 825
_SERVICE_NAME = re.compile(r"^vigie-[a-z0-9-]{1,60}$")


class PkiError(ValueError):
    """The PKI cannot do what was asked (bad name, missing or already existing files)."""


@dataclass(frozen=True, slots=True)
class Credential:
    """What one MQTT client needs to connect in the secure profile."""

    identity: str
    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class PkiPaths:
    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def crl(self) -> Path:
        return self.root / "crl.pem"

    @property
    def broker_cert(self) -> Path:
        return self.root / "broker" / "broker.crt"

    @property
    def broker_key(self) -> Path:
        return self.root / "broker" / "broker.key"

    def gateway(self, gateway_id: str) -> Credential:
        return self._credential("gateways", gateway_id)

    def service(self, name: str) -> Credential:
        return self._credential("services", name)

    def _credential(self, kind: str, identity: str) -> Credential:
        d = self.root / kind / identity
        return Credential(identity, d / "ca.crt", d / "client.crt", d / "client.key")

    def gateways(self) -> list[str]:
        return self._issued("gateways")

    def services(self) -> list[str]:
        return self._issued("services")

    def _issued(self, kind: str) -> list[str]:
        d = self.root / kind
        return sorted(p.name for p in d.iterdir() if (p / "client.crt").exists()) \
            if d.is_dir() else []


# -- building blocks ------------------------------------------------------------------------
def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write a PEM private key that is never readable by others, not even for an instant."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vigie"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _load_ca(paths: PkiPaths) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
        key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise PkiError(f"no usable CA in {paths.root}: {exc} (run `vigie pki init`)") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{paths.ca_key}: not an EC key made by `vigie pki init`")
    return cert, key


def _leaf(ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], subject: str,
          key: ec.EllipticCurvePrivateKey, usage: x509.ObjectIdentifier, days: int,
          san: Sequence[x509.GeneralName] = ()) -> x509.Certificate:
    ca_cert, ca_key = ca
    now = _now()
    builder = (x509.CertificateBuilder()
               .subject_name(_name(subject)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                            content_commitment=False, data_encipherment=False,
                                            key_agreement=True, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _san(hosts: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(["localhost", "127.0.0.1", "::1", *hosts]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _write_crl(paths: PkiPaths, revoked: Sequence[x509.RevokedCertificate]) -> None:
    ca_cert, ca_key = _load_ca(paths)
    now = _now()
    # Mosquitto (OpenSSL) refuses every client once the CRL's nextUpdate has passed, so the
    # list stays valid as long as the CA; `vigie pki revoke` re-signs it each time.
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
               .last_update(now - dt.timedelta(minutes=5))
               .next_update(ca_cert.not_valid_after_utc))
    for entry in revoked:
        builder = builder.add_revoked_certificate(entry)
    paths.crl.write_bytes(builder.sign(ca_key, hashes.SHA256())
                          .public_bytes(serialization.Encoding.PEM))


# -- operations -----------------------------------------------------------------------------
def load_pki(root: Path) -> PkiPaths:
    paths = PkiPaths(root)
    if not (paths.ca_cert.exists() and paths.broker_cert.exists() and paths.crl.exists()):
        raise PkiError(f"{root} is not a Vigie PKI directory (run `vigie pki init {root}`)")
    return paths


def init_pki(root: Path, hosts: Iterable[str] = (), days: int = CA_DAYS) -> PkiPaths:
    """Create the CA, the broker certificate (for ``hosts`` too), an empty CRL and the
    credential of the first ingest worker. Refuses to overwrite an existing CA."""
    paths = PkiPaths(root)
    if paths.ca_cert.exists() or paths.ca_key.exists():
        raise PkiError(f"{root} already holds a CA; issue credentials with it instead")
    root.mkdir(parents=True, exist_ok=True)
    key = _new_key()
    now = _now()
    ca_cert = (x509.CertificateBuilder()
               .subject_name(_name("Vigie MQTT CA")).issuer_name(_name("Vigie MQTT CA"))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=False, key_encipherment=False,
                                            content_commitment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=True,
                                            crl_sign=True, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False)
               .sign(key, hashes.SHA256()))
    _write_key(paths.ca_key, key)
    _write_cert(paths.ca_cert, ca_cert)
    _write_crl(paths, [])
    issue_broker(paths, hosts)
    issue_service(paths, INGEST_IDENTITY)
    return paths


def issue_broker(paths: PkiPaths, hosts: Iterable[str] = (), days: int = BROKER_DAYS) -> None:
    """(Re)issue the broker's server certificate for loopback and ``hosts``."""
    ca = _load_ca(paths)
    key = _new_key()
    cert = _leaf(ca, "vigie-broker", key, ExtendedKeyUsageOID.SERVER_AUTH, days, _san(hosts))
    _write_key(paths.broker_key, key)
    _write_cert(paths.broker_cert, cert)


def issue_gateway(paths: PkiPaths, gateway_id: str, days: int = CLIENT_DAYS,
                  force: bool = False) -> Credential:
    """Issue the credential of one gateway: its common name is its gateway id."""
    try:
        check_id(gateway_id, "gateway")
    except ContractError as exc:
        raise PkiError(str(exc)) from exc
    if gateway_id in paths.services():
        raise PkiError(f"{gateway_id!r} is a service identity; a gateway cannot share it")
    return _issue_client(paths, paths.gateway(gateway_id), days, force)


def issue_service(paths: PkiPaths, name: str, days: int = CLIENT_DAYS,
                  force: bool = False) -> Credential:
    """Issue the credential of a cloud service (an ingest worker): ``vigie-<name>``."""
    if not _SERVICE_NAME.match(name):
        raise PkiError(f"invalid service name {name!r}: use vigie-[a-z0-9-]")
    if name in paths.gateways():
        raise PkiError(f"{name!r} is already a gateway identity")
    return _issue_client(paths, paths.service(name), days, force)


def _issue_client(paths: PkiPaths, cred: Credential, days: int, force: bool) -> Credential:
    ca = _load_ca(paths)
    if cred.cert.exists():
        if not force:
            raise PkiError(f"{cred.identity} already has a credential; --force to rotate it")
        old = x509.load_pem_x509_certificate(cred.cert.read_bytes())
        # Kept so that it can be revoked once the gateway runs with the new one.
        cred.cert.rename(cred.cert.with_name(f"client-{old.serial_number:x}.crt"))
    key = _new_key()
    _write_key(cred.key, key)
    _write_cert(cred.cert, _leaf(ca, cred.identity, key, ExtendedKeyUsageOID.CLIENT_AUTH, days))
    cred.ca.write_bytes(paths.ca_cert.read_bytes())
    return cred


def revoke(paths: PkiPaths, cert_file: Path) -> int:
    """Add a client certificate to the CRL; returns its serial number. The broker reads the
    CRL when it starts (restart it, or send it SIGHUP)."""
    ca_cert, _ = _load_ca(paths)
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise PkiError(f"{cert_file}: not a certificate: {exc}") from exc
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise PkiError(f"{cert_file} was not issued by this CA") from exc
    crl = x509.load_pem_x509_crl(paths.crl.read_bytes())
    entries = list(crl)
    if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is None:
        entries.append(x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
                       .revocation_date(_now()).build())
    _write_crl(paths, entries)
    return cert.serial_number


def acl_text(paths: PkiPaths) -> str:
    """Mosquitto ACL: a gateway writes only its own observations, status (its last will
    included) and edge alarms, and reads only its own configuration and ``stored``
    confirmations; services read every gateway's observations, status and alarms, also as
    MQTT 5 shared subscriptions, write gateway configuration and ``stored`` confirmations (a
    confirmation deletes readings from a gateway's outbox: no gateway may write one), and
    exchange the scale-out's shard topics. Everything else is denied.

    Mosquitto 2.0.11 grants a subscription whatever its filter and applies ``read`` rules to
    each message it would deliver: a gateway subscribed to another's topics receives nothing.
    """
    gw = f"{TOPIC_PREFIX}/gateways"
    lines = ["# Generated by vigie.pki.acl_text: %u is the certificate's common name.",
             f"pattern write {gw}/%u/observations",
             f"pattern write {gw}/%u/status",
             f"pattern write {gw}/%u/alarms",
             f"pattern read {gw}/%u/config/#",
             f"pattern read {gw}/%u/stored", ""]
    for name in paths.services():
        lines += [f"user {name}"]
        for leaf in ("observations", "status", "alarms"):
            lines += [f"topic read {gw}/+/{leaf}", f"topic read $share/+/{gw}/+/{leaf}"]
        lines += [f"topic write {gw}/+/config/#", f"topic write {gw}/+/stored",
                  # scale-out: intake workers route readings to the shard owners
                  f"topic readwrite {TOPIC_PREFIX}/shards/#", ""]
    return "\n".join(lines)
