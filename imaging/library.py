"""A user's finished photos for the portal: the bytes of one photo, the gallery list, and deleting a photo.

Implements the portal's `PhotoLibrary` port (`portal.ports`, structurally: no import) over the `Photo` rows
and the photo stores. Only ready photos of their owner are shown; everything else is "not there" (None), so
the portal can answer one 404 that never reveals whether a photo exists.

The gallery lists chat photos and KEPT references only: a reference is kept when an approved avatar version
names it as its `reference_photo_id`; the portraits the user regenerated away during setup are not listed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from core.models import Avatar, User
from imaging.errors import PhotoNotStored
from imaging.models import Photo, PhotoKindChoice, PhotoStatus
from imaging.storage import PhotoStore

logger = logging.getLogger(__name__)

#: What `delete` did: the photo is gone, there was no such photo, or it anchors the current avatar (refused).
DeleteOutcome = Literal["deleted", "missing", "protected"]


@dataclass(frozen=True, slots=True)
class GalleryEntry:
    """One finished photo as the gallery shows it."""

    id: int
    #: "reference" or "photo".
    kind: str
    scene: str | None
    created_at: datetime
    #: The reference anchoring the current avatar (or the one under review): it cannot be deleted.
    protected: bool = False


class StoredPhotoLibrary:
    """Photos from the database rows and the photo stores (`portal.ports.PhotoLibrary`)."""

    def __init__(self, store: PhotoStore, originals: PhotoStore | None = None) -> None:
        """Serve from `store`; `delete` removes files from it and from `originals` (references' originals)."""
        self._store = store
        self._originals = originals

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
        """`owner_id`'s ready chat photos and kept references, newest first, at most `limit`; with `before`, only
        those with a smaller id.

        Keyset pagination on the id (index `photos(user_id, id)`): a page never repeats or skips a photo when new
        photos arrive between page loads, and an old page costs the same as the first.
        """
        kept = await _kept_references(owner_id)
        query = Photo.filter(user_id=owner_id, status=PhotoStatus.READY).filter(
            Q(kind=PhotoKindChoice.PHOTO) | Q(id__in=sorted(kept) or [0])
        )
        if before is not None:
            query = query.filter(id__lt=before)
        rows = await query.order_by("-id").limit(limit)
        protected = await _protected(owner_id)
        return [_entry(r, protected) for r in rows]

    async def photo(self, owner_id: int, photo_id: int) -> GalleryEntry | None:
        """One ready photo of `owner_id` (for its page), or None when missing, not theirs or not ready."""
        row = await Photo.get_or_none(id=photo_id, user_id=owner_id, status=PhotoStatus.READY)
        return _entry(row, await _protected(owner_id)) if row is not None else None

    async def delete(self, owner_id: int, photo_id: int) -> DeleteOutcome:
        """Delete `owner_id`'s ready photo `photo_id`: its files (served copy and original), then its row.

        The current avatar's kept reference (and a reference under review) anchors every later photo and is
        refused ("protected"). Files go first and with no transaction open (storage may be remote): a failure
        (`StorageError`) leaves the row, so deleting again finishes it. Audit rows stay (append-only).
        """
        row = await Photo.get_or_none(id=photo_id, user_id=owner_id, status=PhotoStatus.READY)
        if row is None:
            return "missing"
        if photo_id in await _protected(owner_id):
            return "protected"
        if row.storage_key:
            await self._store.delete(row.storage_key)
        if row.original_key and self._originals is not None:
            await self._originals.delete(row.original_key)
        async with in_transaction():
            # An older avatar version that kept this portrait no longer names it (its page would show nothing).
            await Avatar.filter(user_id=owner_id, reference_photo_id=photo_id).update(reference_photo_id=None)
            await Photo.filter(id=photo_id, user_id=owner_id).delete()
        logger.info("photo %s deleted by its owner", photo_id)
        return "deleted"


async def _kept_references(owner_id: int) -> set[int]:
    """Ids of the references some approved avatar version of the user kept."""
    ids = cast(
        list[int | None],
        await Avatar.filter(user_id=owner_id, approved_at__isnull=False).values_list("reference_photo_id", flat=True),
    )
    return {i for i in ids if i is not None}


async def _protected(owner_id: int) -> set[int]:
    """The current avatar's kept reference and the reference shown for review in an edit or setup."""
    current = cast(
        list[int | None],
        await Avatar.filter(user_id=owner_id, approved_at__isnull=False)
        .order_by("-approved_at", "-id")
        .limit(1)
        .values_list("reference_photo_id", flat=True),
    )
    reviewing = cast(list[int | None], await User.filter(id=owner_id).values_list("setup_photo_id", flat=True))
    return {i for i in [*current, *reviewing] if i is not None}


def _entry(row: Photo, protected: set[int]) -> GalleryEntry:
    return GalleryEntry(
        id=row.id, kind=str(row.kind), scene=row.scene, created_at=row.created_at, protected=row.id in protected
    )
