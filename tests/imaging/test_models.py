"""Photo models: the audit trail is append-only in the model and in the database (PostgreSQL and SQLite)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest
from tortoise.exceptions import IntegrityError

from core.models import Avatar, DeadLetter, User, user_ref
from imaging.errors import AuditLogImmutable
from imaging.models import Photo, PhotoAudit, PhotoKindChoice, PhotoStatus
from tests.conftest import _asyncpg_dsn

AUDIT_INSERT = (
    "INSERT INTO photo_audit (photo_id, user_ref, kind, event, status, created_at) "
    "VALUES (1, 'user:7', 'photo', 'requested', 'queued', CURRENT_TIMESTAMP)"
)


async def _audit() -> PhotoAudit:
    return await PhotoAudit.create(photo_id=1, user_ref=user_ref(7), kind="photo", event="requested", status="queued")


async def test_audit_row_cannot_be_saved_twice(db: str) -> None:
    """Saving an already stored audit row raises instead of updating it."""
    row = PhotoAudit(photo_id=1, user_ref="user:7", kind="photo", event="requested", status="queued")
    await row.save()
    row.event = "ready"
    with pytest.raises(AuditLogImmutable):
        await row.save()
    assert (await PhotoAudit.get(id=row.id)).event == "requested"


async def test_audit_row_cannot_be_deleted(db: str) -> None:
    """`delete()` on an audit row raises and the row stays."""
    row = await _audit()
    with pytest.raises(AuditLogImmutable):
        await row.delete()
    assert await PhotoAudit.filter(id=row.id).exists()


async def test_postgres_trigger_rejects_update_and_delete(db: str) -> None:
    """Raw SQL UPDATE and DELETE on photo_audit fail in PostgreSQL whoever sends them."""
    await _audit()
    conn = await asyncpg.connect(_asyncpg_dsn(db))
    try:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE photo_audit SET event = 'ready'")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE photo_audit SET user_ref = 'user:8'")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE photo_audit SET user_ref = 'erased:x', event = 'ready'")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM photo_audit")
        assert await conn.fetchval("SELECT count(*) FROM photo_audit WHERE event = 'requested'") == 1
    finally:
        await conn.close()


async def test_pseudonymise_is_the_only_allowed_update(db: str) -> None:
    """Erasure may rewrite `user_ref` alone to a pseudonym; nothing else changes."""
    row = await _audit()
    other = await PhotoAudit.create(photo_id=2, user_ref=user_ref(8), kind="photo", event="requested", status="queued")
    assert await PhotoAudit.pseudonymise(7, "erased:3f2a") == 1
    assert (await PhotoAudit.get(id=row.id)).user_ref == "erased:3f2a"
    assert (await PhotoAudit.get(id=other.id)).user_ref == "user:8"
    with pytest.raises(ValueError):
        await PhotoAudit.pseudonymise(8, "user:9")


async def test_photo_source_key_is_unique(db: str) -> None:
    """Two photos cannot share an idempotency key."""
    user = await User.create()
    avatar = await Avatar.create(
        user=user, name="Ava", gender="woman", age=27, nationality="Italian", appearance="dark hair", personality="x"
    )
    photo = await Photo.create(user=user, avatar=avatar, kind=PhotoKindChoice.PHOTO, source_key="k1")
    assert photo.status == PhotoStatus.QUEUED and photo.attempts == 0
    with pytest.raises(IntegrityError):
        await Photo.create(user=user, avatar=avatar, kind=PhotoKindChoice.PHOTO, source_key="k1")


async def test_postgres_defaults_come_from_the_database(db: str) -> None:
    """Status and attempts get their defaults from the database for raw inserts too."""
    user = await User.create()
    avatar = await Avatar.create(
        user=user, name="Ava", gender="woman", age=27, nationality="Italian", appearance="dark hair", personality="x"
    )
    conn = await asyncpg.connect(_asyncpg_dsn(db))
    try:
        row = await conn.fetchrow(
            "INSERT INTO photos (user_id, avatar_id, kind, source_key, created_at, updated_at) "
            "VALUES ($1, $2, 'photo', 'raw', now(), now()) RETURNING status, attempts",
            user.id,
            avatar.id,
        )
        letter = await conn.fetchrow(
            "INSERT INTO dead_letters (job, payload, error, created_at) VALUES ('j', '{}', 'e', now()) "
            "RETURNING attempts"
        )
    finally:
        await conn.close()
    assert (row["status"], row["attempts"], letter["attempts"]) == ("queued", 0, 0)
    assert await DeadLetter.all().count() == 1


def test_sqlite_triggers_reject_update_and_delete(sqlite_db: Path) -> None:
    """On SQLite (dev mode) the audit table refuses UPDATE and DELETE too, except pseudonymising user_ref."""
    with sqlite3.connect(sqlite_db) as conn:
        conn.execute(AUDIT_INSERT)
        for statement in (
            "UPDATE photo_audit SET event = 'ready'",
            "UPDATE photo_audit SET user_ref = 'user:8'",
            "UPDATE photo_audit SET user_ref = 'erased:x', event = 'ready'",
            "DELETE FROM photo_audit",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)
        conn.execute("UPDATE photo_audit SET user_ref = 'erased:x'")
        assert conn.execute("SELECT user_ref, event FROM photo_audit").fetchall() == [("erased:x", "requested")]
