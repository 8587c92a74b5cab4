"""Erasing a user's photo files: the delivered (watermarked, signed) copies and the private originals.

Rows go with the user (foreign keys cascade); files do not, so account deletion calls this first.
"""

from __future__ import annotations

import logging

from imaging.errors import StorageError
from imaging.models import Photo
from imaging.storage import PhotoStore

logger = logging.getLogger(__name__)


async def erase_photo_files(user_id: int, *, store: PhotoStore, originals: PhotoStore | None) -> int:
    """Delete every stored file of the user's photos; return how many files were deleted."""
    deleted = 0
    for photo in await Photo.filter(user_id=user_id):
        for where, key in ((store, photo.storage_key), (originals, photo.original_key)):
            if where is None or key is None:
                continue
            try:
                await where.delete(key)
            except StorageError:
                logger.exception("photo file of photo %s could not be erased", photo.id)
                raise
            deleted += 1
    return deleted
