"""Photo pipeline models: `Photo` and its append-only `PhotoAudit` trail (`DeadLetter` lives in `core.models`).

`PhotoAudit` is append-only: the model refuses to update or delete a stored row, and migration ``0003`` adds a
database trigger that rejects UPDATE and DELETE as well. The one exception the trigger allows is rewriting
``user_ref`` alone away from its ``user:<id>`` form, which is how erasure pseudonymises the trail (see
`PhotoAudit.pseudonymise`). Audit rows keep `photo_id` as a plain integer, not a foreign key, so they outlive
deleted photos and users.

Model docstrings become table comments and Tortoise splits SQLite DDL on semicolons: keep them out.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import connections, fields
from tortoise.models import Model

from core.models import USER_REF_PREFIX, AppendOnly, Avatar, User, user_ref
from imaging.errors import AuditLogImmutable

#: Table name of the audit trail (the migration's trigger refers to it).
AUDIT_TABLE = "photo_audit"


class PhotoStatus(StrEnum):
    """Lifecycle of a photo: queued -> generating -> ready, or failed / blocked."""

    QUEUED = "queued"
    GENERATING = "generating"
    READY = "ready"
    FAILED = "failed"
    BLOCKED = "blocked"


class PhotoKindChoice(StrEnum):
    """A reference portrait (avatar setup) or a photo conditioned on the approved reference."""

    REFERENCE = "reference"
    PHOTO = "photo"


class AuditEvent(StrEnum):
    """What happened to a photo, one audit row each."""

    REQUESTED = "requested"
    GENERATING = "generating"
    RETRY = "retry"
    READY = "ready"
    FAILED = "failed"
    BLOCKED = "blocked"
    REPLAYED = "replayed"


class Photo(Model):
    """A generated image of an avatar: a reference portrait or a photo in a scene."""

    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "ava.User", related_name="photos", on_delete=fields.CASCADE
    )
    avatar: fields.ForeignKeyRelation[Avatar] = fields.ForeignKeyField(
        "ava.Avatar", related_name="photos", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(PhotoKindChoice, max_length=16, description="reference | photo")
    status = fields.CharEnumField(
        PhotoStatus,
        max_length=16,
        default=PhotoStatus.QUEUED,
        db_default="queued",
        description="queued | generating | ready | failed | blocked",
    )
    scene = fields.TextField(null=True)
    prompt = fields.TextField(null=True)
    #: The chat the request came from: the ready / failed notice goes there.
    chat_channel = fields.CharField(max_length=16, null=True)
    chat_id = fields.CharField(max_length=128, null=True)
    #: Idempotency key from the requester (e.g. the tool call id): one photo per key.
    source_key = fields.CharField(max_length=200, unique=True)
    provider = fields.CharField(max_length=64, null=True)
    model = fields.CharField(max_length=200, null=True)
    seed = fields.BigIntField(null=True)
    provider_job_id = fields.CharField(max_length=200, null=True)
    #: Key of the signed JPEG in the photo store (set exactly when the status is ready).
    storage_key = fields.CharField(max_length=200, null=True)
    #: References only: the unwatermarked provider original (private store, never served) later photos use.
    original_key = fields.CharField(max_length=200, null=True)
    attempts = fields.IntField(default=0, db_default=0)
    error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    ready_at = fields.DatetimeField(null=True)

    user_id: int
    avatar_id: int

    class Meta:
        table = "photos"
        indexes = (("status", "updated_at"), ("user_id", "id"))


class PhotoAudit(AppendOnly):
    """Append-only record of every photo request and state change (rows are never updated or deleted)."""

    immutable_error = AuditLogImmutable

    id = fields.BigIntField(primary_key=True)
    photo_id = fields.BigIntField(db_index=True)
    #: user:<id> until erasure pseudonymises it.
    user_ref = fields.CharField(max_length=128, db_index=True)
    channel = fields.CharField(max_length=16, null=True)
    kind = fields.CharField(max_length=16)
    event = fields.CharField(max_length=32)
    status = fields.CharField(max_length=16)
    scene = fields.TextField(null=True)
    prompt = fields.TextField(null=True)
    safety_allowed = fields.BooleanField(null=True)
    safety_reason = fields.TextField(null=True)
    provider = fields.CharField(max_length=64, null=True)
    model = fields.CharField(max_length=200, null=True)
    seed = fields.BigIntField(null=True)
    provider_job_id = fields.CharField(max_length=200, null=True)
    storage_key = fields.CharField(max_length=200, null=True)
    error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = AUDIT_TABLE

    @classmethod
    async def pseudonymise(cls, user_id: int, pseudonym: str) -> int:
        """Replace `user:<user_id>` by `pseudonym` in every audit row (erasure); return how many rows changed.

        The only update the database trigger allows: `user_ref` alone, to a value not starting with "user:".
        """
        if pseudonym.startswith(USER_REF_PREFIX):
            raise ValueError(f"a pseudonym must not start with {USER_REF_PREFIX!r}")
        conn = connections.get("default")
        placeholder = "$1" if conn.capabilities.dialect == "postgres" else "?"
        second = "$2" if conn.capabilities.dialect == "postgres" else "?"
        count, _ = await conn.execute_query(
            f"UPDATE {AUDIT_TABLE} SET user_ref = {placeholder} WHERE user_ref = {second}",  # noqa: S608
            [pseudonym, user_ref(user_id)],
        )
        return int(count)
