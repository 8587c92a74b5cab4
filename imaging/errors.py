"""Errors of the imaging package: images, downloads, storage, the audit trail and C2PA provenance."""

from __future__ import annotations

from core.errors import AuditImmutable, AvaError


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


class DownloadFailed(ImagingError):
    """The image could not be downloaded, and trying again will not help."""

    http_status = 502
    public_message = "The photo could not be fetched."
    retryable = False


class DownloadTransient(DownloadFailed):
    """A temporary download failure (network, timeout, 5xx, 429): worth a retry."""

    http_status = 503
    retryable = True


class DownloadTooLarge(DownloadFailed):
    """The image is larger than the download limit."""

    http_status = 413


class NotAnImage(DownloadFailed):
    """The server answered with something other than a JPEG, PNG or WebP image."""


class StorageError(ImagingError):
    """The photo store could not read or write."""


class InvalidStorageKey(StorageError):
    """A key that this store never issues (malformed, or trying to escape the root)."""

    http_status = 404
    public_message = "Not found."


class PhotoNotStored(StorageError):
    """No file is stored under the key."""

    http_status = 404
    public_message = "Not found."


class AuditLogImmutable(ImagingError, AuditImmutable):
    """Something tried to change or remove a stored photo audit row."""


class ProvenanceError(ImagingError):
    """Signing or reading a C2PA manifest failed, or the signing credentials are unusable."""


class ManifestNotFound(ProvenanceError):
    """The image carries no C2PA manifest (never signed, or stripped by a re-encode)."""

    http_status = 404
    public_message = "This image carries no content credentials."


class CertificateFilesExist(ProvenanceError):
    """Development certificate files already exist and overwriting was not requested."""


class RetryLater(ImagingError):
    """The photo job should run again after `defer` seconds (the arq job turns this into `arq.Retry`)."""

    def __init__(self, defer: float, reason: str) -> None:
        super().__init__(f"retry in {defer:g} s: {reason}")
        self.defer = defer
        self.reason = reason


class PermanentPhotoFailure(ImagingError):
    """A photo failure no retry can fix; the photo fails and is dead-lettered."""


class DeadLetterNotReplayable(ImagingError):
    """The dead letter does not exist, was already replayed, or is not a photo job."""

    http_status = 409
