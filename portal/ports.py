"""What the portal needs from the rest of Ava, as Protocols; `ava_bot` wires the implementations in.

The portal never imports the imaging package: photos reach it through `PhotoLibrary` (implemented by
`imaging.library`). Implementations need no base class.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable


class GalleryPhoto(Protocol):
    """One finished photo as the gallery shows it (implementations return small frozen dataclasses)."""

    @property
    def id(self) -> int:
        """The photo id (its bytes are at `/photos/{id}`)."""
        ...

    @property
    def kind(self) -> str:
        """Either "reference" (the avatar's portrait) or "photo"."""
        ...

    @property
    def scene(self) -> str | None:
        """What the photo shows, as Ava described the scene."""
        ...

    @property
    def created_at(self) -> datetime:
        """When the photo was requested."""
        ...


@runtime_checkable
class PhotoLibrary(Protocol):
    """Finished photos of a user: their bytes and the gallery list."""

    async def photo_bytes(self, owner_id: int, photo_id: int) -> bytes | None:
        """The JPEG of `photo_id` when it is `owner_id`'s and ready; None when missing, not theirs or not ready.

        Raise a `core.errors.AvaError` when the photo exists but cannot be read now (storage failure).
        """
        ...

    async def gallery(self, owner_id: int, limit: int) -> Sequence[GalleryPhoto]:
        """`owner_id`'s ready photos, newest first, at most `limit`."""
        ...
