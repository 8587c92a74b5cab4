"""Tests of C2PA signing and reading with development certificates (real c2pa library, no network)."""

from __future__ import annotations

import datetime
import io
import random
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image, ImageChops

from imaging.certs import DevCertificates, create_dev_certificates
from imaging.errors import InvalidImage, ManifestNotFound, ProvenanceError
from imaging.provenance import (
    ProvenanceSigner,
    active_assertions,
    read_manifest,
    sign_manifest,
    sign_manifest_async,
)
from imaging.watermark import apply_watermark

MODEL = "black-forest-labs/flux-kontext-pro"
TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def photo_jpeg(width: int = 1024, height: int = 1536, *, seed: int = 5) -> bytes:
    """A deterministic gradient + noise photo, watermarked and encoded as the worker would."""
    rng = random.Random(seed)
    gradient = Image.merge(
        "RGB",
        (
            Image.linear_gradient("L").resize((width, height)),
            Image.radial_gradient("L").resize((width, height)),
            Image.linear_gradient("L").rotate(90).resize((width, height)),
        ),
    )
    grain = Image.frombytes("L", (width, height), rng.randbytes(width * height)).convert("RGB")
    out = io.BytesIO()
    Image.blend(gradient, grain, 0.1).save(out, "JPEG", quality=90)
    return apply_watermark(out.getvalue(), "Ava · AI-generated")


@pytest.fixture
def certs(tmp_path: Path) -> DevCertificates:
    return create_dev_certificates(tmp_path / "certs")


@pytest.fixture
def signer(certs: DevCertificates) -> ProvenanceSigner:
    return ProvenanceSigner.from_files(certs.chain, certs.signer_key)


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return photo_jpeg()


def signed_report(jpeg: bytes, signer: ProvenanceSigner, certs: DevCertificates) -> dict[str, Any]:
    signed = sign_manifest(jpeg, photo_id=4242, model=MODEL, provider="replicate", signer=signer)
    return read_manifest(signed, trust_anchor_pem=certs.ca_cert.read_text())


def test_signed_photo_is_trusted_with_dev_ca(jpeg: bytes, signer: ProvenanceSigner, certs: DevCertificates) -> None:
    """With the dev CA as trust anchor the signed JPEG validates as Trusted, claim generator "Ava"."""
    report = signed_report(jpeg, signer, certs)
    assert report["validation_state"] == "Trusted"
    manifest = report["manifests"][report["active_manifest"]]
    assert manifest["claim_generator_info"][0]["name"] == "Ava"
    assert manifest["signature_info"]["alg"].upper() == "ES256"


def test_manifest_declares_ai_creation(jpeg: bytes, signer: ProvenanceSigner, certs: DevCertificates) -> None:
    """The actions assertion says c2pa.created, trainedAlgorithmicMedia, with the model as softwareAgent."""
    assertions = active_assertions(signed_report(jpeg, signer, certs))
    (action,) = assertions["c2pa.actions.v2"]["actions"]
    assert action["action"] == "c2pa.created"
    assert action["digitalSourceType"] == TRAINED
    assert action["softwareAgent"]["name"] == MODEL


def test_manifest_forbids_training_and_mining(jpeg: bytes, signer: ProvenanceSigner, certs: DevCertificates) -> None:
    """The CAWG training-mining assertion marks generative training, inference, training and mining notAllowed."""
    entries = active_assertions(signed_report(jpeg, signer, certs))["cawg.training-mining"]["entries"]
    expected = {"cawg.ai_generative_training", "cawg.ai_inference", "cawg.ai_training", "cawg.data_mining"}
    assert set(entries) == expected
    assert {entry["use"] for entry in entries.values()} == {"notAllowed"}


def test_manifest_carries_photo_id(jpeg: bytes, signer: ProvenanceSigner, certs: DevCertificates) -> None:
    """The custom com.ava.photo assertion carries the photo id, model and provider."""
    photo = active_assertions(signed_report(jpeg, signer, certs))["com.ava.photo"]
    assert photo == {"photo_id": 4242, "model": MODEL, "provider": "replicate"}


def test_signing_adds_no_thumbnail(jpeg: bytes, signer: ProvenanceSigner) -> None:
    """Thumbnails are off: the signed file is only a few KB larger than the source."""
    signed = sign_manifest(jpeg, photo_id=1, model=MODEL, provider="replicate", signer=signer)
    assert 0 < len(signed) - len(jpeg) < 16 * 1024
    assert "c2pa.thumbnail.claim.jpeg" not in active_assertions(read_manifest(signed, trust_anchor_pem=None))


def test_signing_leaves_pixels_untouched(jpeg: bytes, signer: ProvenanceSigner) -> None:
    """Signing embeds metadata only: the decoded pixels are identical to the unsigned JPEG's."""
    signed = sign_manifest(jpeg, photo_id=1, model=MODEL, provider="replicate", signer=signer)
    before = Image.open(io.BytesIO(jpeg)).convert("RGB")
    after = Image.open(io.BytesIO(signed)).convert("RGB")
    assert ImageChops.difference(before, after).getbbox() is None


def test_without_trust_anchor_not_trusted(jpeg: bytes, signer: ProvenanceSigner) -> None:
    """Without the dev CA as anchor the signature still verifies (Valid) but is not Trusted."""
    signed = sign_manifest(jpeg, photo_id=1, model=MODEL, provider="replicate", signer=signer)
    assert read_manifest(signed, trust_anchor_pem=None)["validation_state"] == "Valid"


def test_other_ca_is_not_trusted(jpeg: bytes, signer: ProvenanceSigner, tmp_path: Path) -> None:
    """An unrelated CA as trust anchor does not make the photo Trusted."""
    other = create_dev_certificates(tmp_path / "other")
    signed = sign_manifest(jpeg, photo_id=1, model=MODEL, provider="replicate", signer=signer)
    assert read_manifest(signed, trust_anchor_pem=other.ca_cert.read_text())["validation_state"] != "Trusted"


def test_reencoding_destroys_manifest(jpeg: bytes, signer: ProvenanceSigner, certs: DevCertificates) -> None:
    """Re-encoding the signed JPEG with Pillow leaves no manifest to read."""
    signed = sign_manifest(jpeg, photo_id=1, model=MODEL, provider="replicate", signer=signer)
    reencoded = io.BytesIO()
    Image.open(io.BytesIO(signed)).save(reencoded, "JPEG", quality=90)
    with pytest.raises(ManifestNotFound):
        read_manifest(reencoded.getvalue(), trust_anchor_pem=certs.ca_cert.read_text())


def test_tampered_pixels_are_invalid(jpeg: bytes, signer: ProvenanceSigner, certs: DevCertificates) -> None:
    """Flipping bytes of the signed image data makes the manifest Invalid."""
    signed = bytearray(sign_manifest(jpeg, photo_id=1, model=MODEL, provider="replicate", signer=signer))
    signed[-5000] ^= 0xFF  # inside the entropy-coded scan, well past the manifest segment
    report = read_manifest(bytes(signed), trust_anchor_pem=certs.ca_cert.read_text())
    assert report["validation_state"] == "Invalid"


async def test_async_signing(jpeg: bytes, signer: ProvenanceSigner, certs: DevCertificates) -> None:
    """sign_manifest_async produces a Trusted manifest, like the sync call, from a worker thread."""
    signed = await sign_manifest_async(jpeg, photo_id="p-7", model=MODEL, provider="replicate", signer=signer)
    report = read_manifest(signed, trust_anchor_pem=certs.ca_cert.read_text())
    assert report["validation_state"] == "Trusted"
    assert active_assertions(report)["com.ava.photo"]["photo_id"] == "p-7"


def test_non_jpeg_input_is_refused(signer: ProvenanceSigner) -> None:
    """Signing something that is not a JPEG raises InvalidImage."""
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    with pytest.raises(InvalidImage):
        sign_manifest(png.getvalue(), photo_id=1, model=MODEL, provider="replicate", signer=signer)


def _self_signed_leaf() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Self-signed signer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def test_self_signed_leaf_is_refused() -> None:
    """A self-signed leaf certificate is refused when the signer is built, with a ProvenanceError that says why."""
    cert_pem, key_pem = _self_signed_leaf()
    with pytest.raises(ProvenanceError, match="separate CA"):
        ProvenanceSigner.from_pem(cert_pem, key_pem)


def test_key_not_matching_certificate_is_refused(certs: DevCertificates, tmp_path: Path) -> None:
    """A private key that does not belong to the leaf certificate is refused when the signer is built."""
    other = create_dev_certificates(tmp_path / "other")
    with pytest.raises(ProvenanceError, match="signature"):
        ProvenanceSigner.from_files(certs.chain, other.signer_key)


def test_unreadable_credentials_are_refused(tmp_path: Path) -> None:
    """Missing files or non-PEM text raise ProvenanceError."""
    with pytest.raises(ProvenanceError, match="cannot read"):
        ProvenanceSigner.from_files(tmp_path / "missing.pem", tmp_path / "missing.key")
    with pytest.raises(ProvenanceError, match="PEM"):
        ProvenanceSigner.from_pem(b"garbage", b"garbage")


def test_unsigned_image_has_no_manifest(jpeg: bytes) -> None:
    """Reading an image that was never signed raises ManifestNotFound."""
    with pytest.raises(ManifestNotFound):
        read_manifest(jpeg, trust_anchor_pem=None)
