"""Errors of the imaging package (watermarking, C2PA provenance, development certificates)."""

from __future__ import annotations

from core.errors import AvaError


class ImagingError(AvaError):
    """Base class of every error raised by the imaging package."""


class InvalidImage(ImagingError):
    """The bytes are not a decodable JPEG, PNG or WebP image."""

    http_status = 400
    public_message = "The image could not be read."


class ImageTooLarge(InvalidImage):
    """The image has more pixels than we agree to decode (decompression-bomb guard)."""

    http_status = 413
    public_message = "The image is too large."


class ProvenanceError(ImagingError):
    """Signing or reading a C2PA manifest failed, or the signing credentials are unusable."""


class ManifestNotFound(ProvenanceError):
    """The image carries no C2PA manifest (never signed, or stripped by a re-encode)."""

    http_status = 404
    public_message = "This image carries no content credentials."


class CertificateFilesExist(ProvenanceError):
    """Development certificate files already exist and overwriting was not requested."""
