"""Domain models of the conversation core: users, channel identities, avatars and messages.

Safety rules are enforced here as well as in the flow and in the database: an avatar's age is
validated by the model (``MinValueValidator``) and by a database CHECK constraint created in
migration ``0001`` (Tortoise does not create ``Meta.constraints`` itself, see LIBRARY-NOTES).

Model docstrings become table comments, and Tortoise splits SQLite DDL on semicolons: keep them out.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model
from tortoise.validators import MaxLengthValidator, MinValueValidator

from core.errors import AuditImmutable

#: The youngest age an avatar may have. A hard floor: flow, model and database all enforce it.
MIN_AVATAR_AGE = 20
#: The longest free-text appearance description accepted.
MAX_APPEARANCE_CHARS = 2000


class Direction(StrEnum):
    """Whether a message came from the user or was sent by Ava."""

    INBOUND = "in"
    OUTBOUND = "out"


class MessageStatus(StrEnum):
    """Processing state of a message; inbound rows start `pending` and end `done`."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    SENT = "sent"
    #: Outbound, held until the user writes again (WhatsApp's 24-hour window closed): never lost.
    HELD = "held"
    #: Inbound, stored but over the user's message rate limit: kept, never turned into a turn (`core.inbox`).
    LIMITED = "limited"


class SetupStep(StrEnum):
    """Where a user is in onboarding and avatar setup (stored per user, so the flow survives restarts)."""

    ONBOARDING = "onboarding"
    GENDER = "gender"
    AGE = "age"
    NATIONALITY = "nationality"
    APPEARANCE = "appearance"
    NAME = "name"
    PERSONALITY = "personality"
    #: Every answer shown with "looks good" / "change …": only confirming it makes the avatar (no schema change:
    #: the column is a plain varchar).
    SUMMARY = "summary"
    REFERENCE_PENDING = "reference_pending"
    REFERENCE_REVIEW = "reference_review"
    DONE = "done"


class Mode(StrEnum):
    """Conversation mode."""

    SECRETARY = "secretary"
    INTIMATE = "intimate"


class User(Model):
    """A person using Ava on one or more channels."""

    id = fields.BigIntField(primary_key=True)
    email = fields.CharField(max_length=254, null=True, unique=True)
    password_hash = fields.CharField(max_length=255, null=True)
    adult_confirmed_at = fields.DatetimeField(null=True)
    terms_accepted_at = fields.DatetimeField(null=True)
    setup_step = fields.CharEnumField(
        SetupStep, max_length=32, default=SetupStep.ONBOARDING, db_default="onboarding", description="setup step"
    )
    # Answers collected so far in the current setup or edit (validated again when the avatar is created).
    draft_gender = fields.CharField(max_length=64, null=True)
    draft_age = fields.SmallIntField(null=True)
    draft_nationality = fields.CharField(max_length=128, null=True)
    draft_appearance = fields.TextField(null=True)
    draft_name = fields.CharField(max_length=64, null=True)
    draft_personality = fields.CharField(max_length=32, null=True)
    #: The avatar version being set up (its reference photo is made or reviewed).
    setup_avatar_id = fields.BigIntField(null=True)
    #: The reference photo shown for review (None while it is being made or after it failed).
    setup_photo_id = fields.BigIntField(null=True)
    #: True while `/avatar` edits an existing avatar (current values are offered as defaults).
    editing_avatar = fields.BooleanField(default=False, db_default=False)
    reference_regenerations = fields.IntField(default=0, db_default=0)
    mode = fields.CharEnumField(
        Mode, max_length=16, default=Mode.SECRETARY, db_default="secretary", description="secretary | intimate"
    )
    #: Refused answers to the current setup question (after 3 it offers choices only: the flow never loops).
    setup_refusals = fields.IntField(default=0, db_default=0)
    #: Which round of questions is open: a pressed button carries it, so a press on a passed question is refused.
    question_round = fields.IntField(default=0, db_default=0)
    #: Optimistic concurrency: every committed state change bumps it (a turn computed on stale state re-runs).
    version = fields.IntField(default=0, db_default=0)
    #: Bumped by "sign out everywhere" and erasure: sessions and photo links issued before are refused.
    auth_epoch = fields.IntField(default=0, db_default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    identities: fields.ReverseRelation[ChannelIdentity]
    avatars: fields.ReverseRelation[Avatar]

    class Meta:
        table = "users"


class ChannelIdentity(Model):
    """Links a platform account (Telegram user, WhatsApp number, web login) to a `User`."""

    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "ava.User", related_name="identities", on_delete=fields.CASCADE
    )
    channel = fields.CharField(max_length=16)
    external_user_id = fields.CharField(max_length=128)
    #: Set when the platform said the user cannot be reached (blocked the bot, number gone), cleared when they write.
    unreachable_at = fields.DatetimeField(null=True)
    unreachable_reason = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    user_id: int

    class Meta:
        table = "channel_identities"
        unique_together = (("channel", "external_user_id"),)


class Avatar(Model):
    """One version of a user's character. Editing creates a new version with a new reference photo."""

    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "ava.User", related_name="avatars", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=64)
    gender = fields.CharField(max_length=64)
    age = fields.SmallIntField(validators=[MinValueValidator(MIN_AVATAR_AGE)])
    nationality = fields.CharField(max_length=128)
    appearance = fields.TextField(validators=[MaxLengthValidator(MAX_APPEARANCE_CHARS)])
    personality = fields.CharField(max_length=32)
    #: The approved reference photo anchoring every later photo (photos table: imaging issue).
    reference_photo_id = fields.BigIntField(null=True)
    approved_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "avatars"
        constraints = (
            CheckConstraint(check=f"age >= {MIN_AVATAR_AGE}", name="avatars_age_adult"),
            CheckConstraint(check=f"length(appearance) <= {MAX_APPEARANCE_CHARS}", name="avatars_appearance_length"),
        )


class Message(Model):
    """A chat message in either direction. Inbound rows are unique per (channel, external id)."""

    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "ava.User", related_name="messages", on_delete=fields.CASCADE
    )
    # Explicit one-line descriptions: the generated multi-line ones break SQLite DDL in Tortoise 1.1.
    direction = fields.CharEnumField(Direction, max_length=3, description="in | out")
    channel = fields.CharField(max_length=16)
    chat_id = fields.CharField(max_length=128)
    external_message_id = fields.CharField(max_length=128, null=True)
    text = fields.TextField(null=True)
    choice = fields.CharField(max_length=128, null=True)
    #: Structured outbound reply (choices, link, photo) as produced by `core.messages.reply_to_payload`.
    payload: dict[str, object] | None = fields.JSONField(null=True)
    #: Part of the LLM conversation history (chat turns only, never setup questions).
    in_history = fields.BooleanField(default=False, db_default=False)
    status = fields.CharEnumField(
        MessageStatus, max_length=16, default=MessageStatus.PENDING, description="pending | done | failed | sent"
    )
    #: Inbound: turns started for it. Outbound: failed send attempts.
    attempts = fields.IntField(default=0, db_default=0)
    #: The last error (a failed turn, a refused send).
    error = fields.TextField(null=True)
    #: Outbound: the platform message id of the sent message.
    platform_message_id = fields.CharField(max_length=128, null=True)
    #: Outbound: what the platform last reported (sent, delivered, read, failed), from its status callbacks.
    platform_status = fields.CharField(max_length=16, null=True)
    #: Outbound: not before this time (a transient send failure waits, honouring retry_after).
    next_attempt_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    processed_at = fields.DatetimeField(null=True)

    user_id: int

    class Meta:
        table = "messages"
        unique_together = (("channel", "external_message_id"),)
        indexes = (("user_id", "status", "id"), ("status", "created_at"), ("channel", "platform_message_id"))


class DeadLetter(Model):
    """Work that failed for good (a turn, a photo job), kept with its payload to inspect and replay."""

    id = fields.BigIntField(primary_key=True)
    job = fields.CharField(max_length=64)
    payload: dict[str, Any] = fields.JSONField()
    error = fields.TextField()
    attempts = fields.IntField(default=0, db_default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    replayed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "dead_letters"


#: Prefix of a not-yet-pseudonymised audit `user_ref`.
USER_REF_PREFIX = "user:"


def user_ref(user_id: int) -> str:
    """The audit reference of a user ("user:42"); erasure later replaces it with a pseudonym."""
    return f"{USER_REF_PREFIX}{user_id}"


class AppendOnly(Model):
    """An audit table's rows: inserted once, never updated or deleted (a database trigger refuses it too)."""

    #: What a refused change raises.
    immutable_error: type[AuditImmutable] = AuditImmutable

    class Meta:
        abstract = True

    async def save(
        self,
        using_db: BaseDBAsyncClient | None = None,
        update_fields: Iterable[str] | None = None,
        force_create: bool = False,
        force_update: bool = False,
    ) -> None:
        """Insert the row; refuse to update one already stored."""
        if self._saved_in_db or force_update or update_fields is not None:
            raise self.immutable_error(f"{self._meta.db_table} row {self.pk} is append-only and cannot be updated")
        await super().save(using_db=using_db, force_create=True)

    async def delete(self, using_db: BaseDBAsyncClient | None = None) -> None:
        """Always refuse: audit rows are never deleted."""
        raise self.immutable_error(f"{self._meta.db_table} row {self.pk} is append-only and cannot be deleted")


class SafetyRefusal(AppendOnly):
    """Append-only record of every text a safety layer refused: an avatar field, a photo scene or a prompt."""

    id = fields.BigIntField(primary_key=True)
    #: user:<id> until erasure pseudonymises it.
    user_ref = fields.CharField(max_length=128, db_index=True)
    channel = fields.CharField(max_length=16, null=True)
    #: gender, nationality, appearance, name, personality, age, scene or prompt.
    field = fields.CharField(max_length=32)
    #: rules, or the moderation layer that refused.
    layer = fields.CharField(max_length=64)
    #: The reason code (a rule name or a moderation category).
    code = fields.CharField(max_length=64)
    reason = fields.TextField(null=True)
    #: The refused text (bounded), for an operator to review.
    text = fields.TextField(null=True)
    photo_id = fields.BigIntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "safety_refusals"


class LinkCode(Model):
    """A one-time code that links a Telegram or WhatsApp chat to the web account that made it."""

    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "ava.User", related_name="link_codes", on_delete=fields.CASCADE
    )
    #: The channel the code may be used on.
    channel = fields.CharField(max_length=16)
    #: SHA-256 of the code (the code itself is shown once and never stored).
    code_hash = fields.CharField(max_length=64, unique=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    user_id: int

    class Meta:
        table = "link_codes"


class UsedToken(Model):
    """A one-time token (a magic sign-in link) that was used: its SHA-256, so it is never accepted again."""

    id = fields.BigIntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    used_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "used_tokens"
