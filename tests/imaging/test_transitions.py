"""`move_photo`: the photo's conditional state change and its audit row, in one statement on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tortoise.transactions import in_transaction

from core.models import Avatar, User, user_ref
from imaging.models import Photo, PhotoAudit, PhotoKindChoice, PhotoStatus
from imaging.transitions import move_photo, single_statement


async def _photo(status: PhotoStatus = PhotoStatus.QUEUED) -> Photo:
    user = await User.create()
    avatar = await Avatar.create(
        user=user,
        name="Giulia",
        gender="woman",
        age=27,
        nationality="Italian",
        appearance="green eyes",
        personality="calm",
    )
    return await Photo.create(
        user=user, avatar=avatar, kind=PhotoKindChoice.PHOTO, status=status, scene="at the beach", source_key="k1"
    )


async def test_a_move_updates_the_photo_and_writes_its_audit_row(db: str) -> None:
    """The photo takes the new status and values; its audit row holds the photo's identity and the audit columns
    (a key that is no audit column is ignored, as the ORM ignores it)."""
    assert single_statement()  # the tests run on PostgreSQL: the one-statement path
    photo = await _photo()
    before = datetime.now(UTC)
    moved = await move_photo(
        photo,
        PhotoStatus.GENERATING,
        "generating",
        updates={"attempts": 2, "prompt": "a portrait"},
        audit={"prompt": "a portrait", "safety_allowed": True, "safety_reason": None, "original_key": "x"},
    )
    assert moved
    stored = await Photo.get(id=photo.id)
    assert (stored.status, stored.attempts, stored.prompt) == (PhotoStatus.GENERATING, 2, "a portrait")
    assert stored.updated_at >= before
    row = await PhotoAudit.get(photo_id=photo.id)
    assert (row.user_ref, row.kind, row.event, row.status, row.scene) == (
        user_ref(photo.user_id),
        "photo",
        "generating",
        "generating",
        "at the beach",
    )
    assert (row.prompt, row.safety_allowed, row.safety_reason, row.channel) == ("a portrait", True, None, None)
    assert row.created_at >= before


@pytest.mark.parametrize("status", [PhotoStatus.READY, PhotoStatus.FAILED, PhotoStatus.BLOCKED])
async def test_a_finished_photo_is_neither_moved_nor_audited(db: str, status: PhotoStatus) -> None:
    """A photo in a terminal state stays as it is, and no audit row is written."""
    photo = await _photo(status)
    assert not await move_photo(photo, PhotoStatus.GENERATING, "generating", updates={"attempts": 1}, audit={})
    assert (await Photo.get(id=photo.id)).status == status
    assert not await PhotoAudit.filter(photo_id=photo.id).exists()


async def test_a_move_inside_a_transaction_rolls_back_with_it(db: str) -> None:
    """Inside the caller's transaction the move is part of it: a rollback undoes the status and the audit row."""
    photo = await _photo()
    with pytest.raises(RuntimeError):
        async with in_transaction():
            assert await move_photo(photo, PhotoStatus.READY, "ready", updates={"storage_key": "a/b/c"}, audit={})
            raise RuntimeError("the notice could not be written")
    stored = await Photo.get(id=photo.id)
    assert (stored.status, stored.storage_key) == (PhotoStatus.QUEUED, None)
    assert not await PhotoAudit.filter(photo_id=photo.id).exists()
