"""Tests of the development certificate generator."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from imaging.certs import create_dev_certificates
from imaging.errors import CertificateFilesExist


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_created_with_private_keys_0600(tmp_path: Path) -> None:
    """ca.pem, ca.key, chain.pem and signer.key are written; both private keys are readable by the owner only."""
    certs = create_dev_certificates(tmp_path / "c2pa")
    assert [p.name for p in (certs.ca_cert, certs.ca_key, certs.chain, certs.signer_key)] == [
        "ca.pem",
        "ca.key",
        "chain.pem",
        "signer.key",
    ]
    assert mode(certs.ca_key) == 0o600
    assert mode(certs.signer_key) == 0o600
    for key_path in (certs.ca_key, certs.signer_key):
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"


def test_chain_is_leaf_then_ca_with_c2pa_profile(tmp_path: Path) -> None:
    """chain.pem holds the leaf (CA:false, digitalSignature, emailProtection, AKI = CA's SKI) then the CA (CA:true)."""
    certs = create_dev_certificates(tmp_path)
    leaf, ca = x509.load_pem_x509_certificates(certs.chain.read_bytes())
    assert ca == x509.load_pem_x509_certificate(certs.ca_cert.read_bytes())
    assert ca.subject == ca.issuer and leaf.issuer == ca.subject and leaf.subject != ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature is True
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    leaf.verify_directly_issued_by(ca)
    signer_key = serialization.load_pem_private_key(certs.signer_key.read_bytes(), password=None)
    assert signer_key.public_key() == leaf.public_key()


def test_existing_files_not_overwritten_without_force(tmp_path: Path) -> None:
    """A second run refuses to overwrite any existing file and leaves the first run's files intact."""
    first = create_dev_certificates(tmp_path)
    before = {p: p.read_bytes() for p in (first.ca_cert, first.ca_key, first.chain, first.signer_key)}
    with pytest.raises(CertificateFilesExist, match="force=True"):
        create_dev_certificates(tmp_path)
    assert {p: p.read_bytes() for p in before} == before


def test_one_existing_file_blocks_creation(tmp_path: Path) -> None:
    """Even a single existing target file (here signer.key) stops the run before anything is written."""
    (tmp_path / "signer.key").write_text("keep me")
    with pytest.raises(CertificateFilesExist, match=r"signer\.key"):
        create_dev_certificates(tmp_path)
    assert (tmp_path / "signer.key").read_text() == "keep me"
    assert not (tmp_path / "ca.pem").exists()


def test_force_overwrites_with_new_keys(tmp_path: Path) -> None:
    """With force=True new keys and certificates replace the old ones, keys still 0600."""
    first = create_dev_certificates(tmp_path)
    old_key = first.signer_key.read_bytes()
    first.signer_key.chmod(0o644)
    second = create_dev_certificates(tmp_path, force=True)
    assert second.signer_key.read_bytes() != old_key
    assert mode(second.signer_key) == 0o600
