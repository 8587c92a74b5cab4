"""Erasing a user's photo files: the delivered (watermarked, signed) copies and the private originals.

Rows go with the user (foreign keys cascade); files do not, so account deletion erases them first, with no
database transaction open, and once more afterwards for any file a photo job stored in between
(`photo_files` read inside the deleting transaction, then `erase_files` after commit). Deleting a file that
is already gone is not an error, so erasure can simply run again after a partial failure.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from imaging.errors import StorageError
from imaging.models import Photo
from imaging.storage import PhotoStore

logger = logging.getLogger(__name__)


class FileStore(StrEnum):
    """Which store a photo file lives in."""

    SERVED = "served"
    ORIGINAL = "original"


@dataclass(frozen=True, slots=True)
class PhotoFile:
    """One stored file of a photo."""

    store: FileStore
    key: str
    photo_id: int


async def photo_files(user_id: int) -> set[PhotoFile]:
    """Every stored file of the user's photos (served copies and originals), by the photo rows."""
    found: set[PhotoFile] = set()
    rows = await Photo.filter(user_id=user_id).values_list("id", "storage_key", "original_key")
    for photo_id, storage_key, original_key in rows:
        if storage_key:
            found.add(PhotoFile(FileStore.SERVED, storage_key, photo_id))
        if original_key:
            found.add(PhotoFile(FileStore.ORIGINAL, original_key, photo_id))
    return found


async def erase_files(files: Iterable[PhotoFile], *, store: PhotoStore, originals: PhotoStore | None) -> int:
    """Delete `files` from their stores; return how many were deleted (an original without a store is skipped)."""
    deleted = 0
    for file in files:
        where = store if file.store is FileStore.SERVED else originals
        if where is None:
            continue
        try:
            await where.delete(file.key)
        except StorageError:
            logger.exception("%s file of photo %s could not be erased", file.store, file.photo_id)
            raise
        deleted += 1
    return deleted


async def erase_photo_files(user_id: int, *, store: PhotoStore, originals: PhotoStore | None) -> int:
    """Delete every stored file of the user's photos; return how many files were deleted."""
    return await erase_files(await photo_files(user_id), store=store, originals=originals)
