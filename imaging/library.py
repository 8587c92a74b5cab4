"""A user's finished photos for the portal: the bytes of one photo and the gallery list.

Implements the portal's `PhotoLibrary` port (`portal.ports`, structurally: no import) over the `Photo` rows
and a `PhotoStore`. Only ready photos of their owner are shown; everything else is "not there" (None), so
the portal can answer one 404 that never reveals whether a photo exists.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from imaging.errors import PhotoNotStored
from imaging.models import Photo, PhotoStatus
from imaging.storage import PhotoStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GalleryEntry:
    """One finished photo as the gallery shows it."""

    id: int
    #: "reference" or "photo".
    kind: str
    scene: str | None
    created_at: datetime


class StoredPhotoLibrary:
    """Photos from the database rows and the photo store (`portal.ports.PhotoLibrary`)."""

    def __init__(self, store: PhotoStore) -> None:
        self._store = store

    async def photo_bytes(self, owner_id: int, photo_id: int) -> bytes | None:
        """The stored JPEG when the photo is `owner_id`'s and ready, else None.

        A ready photo whose file is gone is logged and treated as missing; other storage failures raise
        `imaging.errors.StorageError` (an `AvaError`).
        """
        row = await Photo.get_or_none(id=photo_id, user_id=owner_id, status=PhotoStatus.READY)
        if row is None or row.storage_key is None:
            return None
        try:
            return await self._store.get(row.storage_key)
        except PhotoNotStored:
            logger.error("photo %s is ready but its file is missing", photo_id)
            return None

    async def gallery(self, owner_id: int, limit: int, before: int | None = None) -> Sequence[GalleryEntry]:
        """`owner_id`'s ready photos, newest first, at most `limit`; with `before`, only those with a smaller id.

        Keyset pagination on the id (index `photos(user_id, id)`): a page never repeats or skips a photo when new
        photos arrive between page loads, and an old page costs the same as the first.
        """
        query = Photo.filter(user_id=owner_id, status=PhotoStatus.READY)
        if before is not None:
            query = query.filter(id__lt=before)
        rows = await query.order_by("-id").limit(limit)
        return [_entry(r) for r in rows]

    async def photo(self, owner_id: int, photo_id: int) -> GalleryEntry | None:
        """One ready photo of `owner_id` (for its page), or None when missing, not theirs or not ready."""
        row = await Photo.get_or_none(id=photo_id, user_id=owner_id, status=PhotoStatus.READY)
        return _entry(row) if row is not None else None


def _entry(row: Photo) -> GalleryEntry:
    return GalleryEntry(id=row.id, kind=str(row.kind), scene=row.scene, created_at=row.created_at)
