"""C2PA content credentials: sign a generated photo's JPEG with a manifest saying how it was made, and read it back.

The manifest holds a `c2pa.actions.v2` assertion (`c2pa.created`, digital source type trainedAlgorithmicMedia, the
model as software agent), a `cawg.training-mining` assertion forbidding AI training, inference and data mining, and
`com.ava.photo` with our photo id. Thumbnails are off (one costs ~75 ms and ~229 KB per photo); no timestamp
authority is contacted (`ta_url=None`), so signing never touches the network.

Sign last: any re-encode of the signed JPEG (Pillow, a messenger's recompression) strips or breaks the manifest.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import logging
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import c2pa
from PIL import Image

from imaging.errors import InvalidImage, ManifestNotFound, ProvenanceError

logger = logging.getLogger(__name__)

ACTIONS_LABEL = "c2pa.actions.v2"
# C2PA 2.x dropped `c2pa.training-mining`; the Creator Assertions Working Group republished it under this label
# with `cawg.`-prefixed entries. c2pa 0.38 (c2pa-rs 0.91) writes claim v2, so we use the CAWG form.
TRAINING_MINING_LABEL = "cawg.training-mining"
TRAINING_MINING_ENTRIES = ("cawg.ai_generative_training", "cawg.ai_inference", "cawg.ai_training", "cawg.data_mining")
PHOTO_LABEL = "com.ava.photo"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"

_JPEG = "image/jpeg"
_PROBE_SETTINGS: dict[str, Any] = {"builder": {"thumbnail": {"enabled": False}}}
# c2pa re-reads and validates every file it signs (`verify_after_sign`, ~0.75 ms of ~1.8 ms per photo). The only
# failure it can catch in our use is a key that does not match the certificate, which is fixed per signer: the
# construction probe signs with verification on, so per-photo signing skips the repeat check.
_SIGN_SETTINGS: dict[str, Any] = {**_PROBE_SETTINGS, "verify": {"verify_after_sign": False}}
_CERT_HINT = (
    "the leaf certificate must be issued by a separate CA (a self-signed leaf is refused), with CA:false, "
    "KeyUsage digitalSignature, an Authority Key Identifier and EKU emailProtection, and match the private key"
)


class ProvenanceSigner:
    """An ES256 C2PA signer built once from a PEM certificate chain (leaf first, then its CA) and the leaf's key.

    Thread-safe: concurrent `sign_manifest` calls share the native signer. Construction signs a tiny probe image so a
    certificate c2pa refuses fails at startup rather than on the first photo.
    """

    def __init__(self, cert_chain_pem: str, private_key_pem: str) -> None:
        if "BEGIN CERTIFICATE" not in cert_chain_pem:
            raise ProvenanceError("the certificate chain is not PEM (no 'BEGIN CERTIFICATE' block)")
        if "PRIVATE KEY" not in private_key_pem:
            raise ProvenanceError("the signing key is not a PEM private key")
        try:
            info = c2pa.C2paSignerInfo(
                alg=c2pa.C2paSigningAlg.ES256,
                sign_cert=cert_chain_pem.encode(),
                private_key=private_key_pem.encode(),
                ta_url=None,
            )
            self._signer = c2pa.Signer.from_info(info)
            self._context = c2pa.Context.from_dict(_SIGN_SETTINGS)
            probe_context = c2pa.Context.from_dict(_PROBE_SETTINGS)
        except c2pa.C2paError as exc:
            raise ProvenanceError(f"C2PA refused the signing credentials: {exc}; {_CERT_HINT}") from exc
        with probe_context:
            self._probe(probe_context)

    @classmethod
    def from_pem(cls, cert_chain_pem: str | bytes, private_key_pem: str | bytes) -> ProvenanceSigner:
        """Build a signer from PEM text (certificate chain: leaf then CA; PKCS#8 or SEC1 EC private key)."""
        chain = cert_chain_pem.decode() if isinstance(cert_chain_pem, bytes) else cert_chain_pem
        key = private_key_pem.decode() if isinstance(private_key_pem, bytes) else private_key_pem
        return cls(chain, key)

    @classmethod
    def from_files(cls, cert_chain_path: Path | str, key_path: Path | str) -> ProvenanceSigner:
        """Build a signer from a PEM certificate-chain file and a PEM private-key file."""
        try:
            chain = Path(cert_chain_path).read_text(encoding="ascii")
            key = Path(key_path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ProvenanceError(f"cannot read the C2PA signing credentials: {exc}") from exc
        return cls(chain, key)

    def _probe(self, context: c2pa.Context) -> None:
        """Sign a tiny JPEG with c2pa's post-sign verification on: proves the chain and key are usable."""
        probe = io.BytesIO()
        Image.new("RGB", (8, 8), (128, 128, 128)).save(probe, "JPEG")
        try:
            self._sign(_manifest(photo_id="probe", model="probe", provider="probe"), probe.getvalue(), context)
        except ProvenanceError as exc:
            raise ProvenanceError(f"C2PA refused the signing certificate: {exc.__cause__}; {_CERT_HINT}") from exc

    def sign(self, manifest: Mapping[str, Any], jpeg: bytes) -> bytes:
        """Embed `manifest`, signed, into `jpeg`; return the signed JPEG bytes (no pixel is re-encoded)."""
        return self._sign(manifest, jpeg, self._context)

    def _sign(self, manifest: Mapping[str, Any], jpeg: bytes, context: c2pa.Context) -> bytes:
        dest = io.BytesIO()
        try:
            builder = c2pa.Builder.from_json(dict(manifest), context=context)
            builder.sign(self._signer, _JPEG, io.BytesIO(jpeg), dest)
        except c2pa.C2paError as exc:
            raise ProvenanceError(f"C2PA signing failed: {exc}") from exc
        return dest.getvalue()

    def close(self) -> None:
        """Free the native signer and context (also done on garbage collection)."""
        self._signer.close()
        self._context.close()


@functools.cache
def _claim_generator() -> dict[str, str]:
    try:
        return {"name": "Ava", "version": metadata.version("ava-bot")}
    except metadata.PackageNotFoundError:
        return {"name": "Ava"}


def _manifest(*, photo_id: int | str, model: str, provider: str) -> dict[str, Any]:
    return {
        "claim_generator_info": [dict(_claim_generator())],
        "title": f"ava-photo-{photo_id}.jpg",
        "format": _JPEG,
        "assertions": [
            {
                "label": ACTIONS_LABEL,
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                            "softwareAgent": {"name": model},
                        }
                    ]
                },
            },
            {
                "label": TRAINING_MINING_LABEL,
                "data": {"entries": {entry: {"use": "notAllowed"} for entry in TRAINING_MINING_ENTRIES}},
            },
            {"label": PHOTO_LABEL, "data": {"photo_id": photo_id, "model": model, "provider": provider}},
        ],
    }


def sign_manifest(jpeg: bytes, *, photo_id: int | str, model: str, provider: str, signer: ProvenanceSigner) -> bytes:
    """Return `jpeg` with an embedded, signed C2PA manifest declaring it AI-generated by `model` via `provider`."""
    if not jpeg.startswith(b"\xff\xd8\xff"):
        raise InvalidImage("C2PA signing expects JPEG bytes (watermark/encode first)")
    return signer.sign(_manifest(photo_id=photo_id, model=model, provider=provider), jpeg)


async def sign_manifest_async(
    jpeg: bytes, *, photo_id: int | str, model: str, provider: str, signer: ProvenanceSigner
) -> bytes:
    """`sign_manifest` in a worker thread (the native signing code releases the GIL)."""
    return await asyncio.to_thread(
        sign_manifest, jpeg, photo_id=photo_id, model=model, provider=provider, signer=signer
    )


def read_manifest(jpeg: bytes, *, trust_anchor_pem: str | None) -> dict[str, Any]:
    """The C2PA manifest store of `jpeg` as the Reader's JSON dict, including `validation_state`.

    `validation_state` is "Trusted" when the signing chain ends in `trust_anchor_pem`, "Valid" when the signature
    and hashes check out but the signer is not trusted, "Invalid" when the image or manifest was tampered with.
    """
    settings: dict[str, Any] = {"trust": {"user_anchors": trust_anchor_pem}} if trust_anchor_pem else {}
    try:
        context = c2pa.Context.from_dict(settings)
        with context, c2pa.Reader(_JPEG, io.BytesIO(jpeg), context=context) as reader:
            report: dict[str, Any] = json.loads(reader.json())
            report.setdefault("validation_state", reader.get_validation_state())
    except c2pa.C2paError.ManifestNotFound as exc:
        raise ManifestNotFound(f"no C2PA manifest in the image: {exc}") from exc
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"cannot read the C2PA manifest: {exc}") from exc
    return report


def active_assertions(report: Mapping[str, Any]) -> dict[str, Any]:
    """The active manifest's assertions of a `read_manifest` report, as {label: data}."""
    manifest = report.get("manifests", {}).get(report.get("active_manifest", ""), {})
    return {assertion["label"]: assertion.get("data") for assertion in manifest.get("assertions", [])}
