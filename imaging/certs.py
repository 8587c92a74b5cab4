"""Development-only C2PA signing certificates: a local CA and a leaf certificate it issues.

c2pa refuses a self-signed leaf, so even for development we need a two-level chain. Validators only report such
photos as "Trusted" when given `ca.pem` as a trust anchor. Production must use a certificate from a CA on the C2PA
trust list instead.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from imaging.errors import CertificateFilesExist

CA_VALID_DAYS = 3650
LEAF_VALID_DAYS = 825
_BACKDATE = datetime.timedelta(hours=1)  # tolerate clock skew between the signing and verifying machines


@dataclass(frozen=True, slots=True)
class DevCertificates:
    """Paths of the files `create_dev_certificates` wrote."""

    ca_cert: Path  # ca.pem: the trust anchor to give validators
    ca_key: Path  # ca.key (0600)
    chain: Path  # chain.pem: leaf then CA, what the signer sends
    signer_key: Path  # signer.key (0600): the leaf's private key


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ava development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _issue_ca(key: ec.EllipticCurvePrivateKey, now: datetime.datetime) -> x509.Certificate:
    name = _name("Ava Development CA")
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=CA_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _issue_leaf(
    key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, now: datetime.datetime
) -> x509.Certificate:
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(_name("Ava Development C2PA Signer"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=LEAF_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    # Create with the final mode so a private key is never readable by others, not even briefly;
    # fchmod also fixes the mode of a file being overwritten (force=True).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(fd, mode)
        file.write(data)


def create_dev_certificates(directory: Path, *, force: bool = False) -> DevCertificates:
    """DEVELOPMENT ONLY: write a local CA and a C2PA signing leaf it issues (EC P-256) into `directory`.

    Files: ca.pem, ca.key (0600), chain.pem (leaf + CA), signer.key (0600). Existing files are never
    overwritten unless `force=True`. Photos signed with these are only "Trusted" by validators given ca.pem.
    """
    paths = DevCertificates(
        ca_cert=directory / "ca.pem",
        ca_key=directory / "ca.key",
        chain=directory / "chain.pem",
        signer_key=directory / "signer.key",
    )
    existing = [p.name for p in (paths.ca_cert, paths.ca_key, paths.chain, paths.signer_key) if p.exists()]
    if existing and not force:
        raise CertificateFilesExist(f"{', '.join(existing)} already exist in {directory}; pass force=True to overwrite")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue_ca(ca_key, now)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _issue_leaf(leaf_key, ca, ca_key, now)

    _write(paths.ca_key, _key_pem(ca_key), 0o600)
    _write(paths.signer_key, _key_pem(leaf_key), 0o600)
    _write(paths.ca_cert, _cert_pem(ca), 0o644)
    _write(paths.chain, _cert_pem(leaf) + _cert_pem(ca), 0o644)
    return paths
