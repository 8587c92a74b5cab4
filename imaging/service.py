"""`PhotoService`: the `core.ports.PhotoRequests` implementation (record a queued photo, then dispatch its job).

`request_photo` runs inside the caller's transaction (the engine records the photo together with its chat
turn); `dispatch` enqueues the arq job after that transaction committed. If Redis loses the job, or dispatch
never runs, the `sweep_photos` cron finds the queued row in PostgreSQL and enqueues it again.
"""

from __future__ import annotations

import logging

from arq.connections import ArqRedis
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core.messages import ChatRef
from core.models import user_ref
from core.ports import PhotoKind
from imaging.models import AuditEvent, Photo, PhotoAudit, PhotoKindChoice, PhotoStatus

logger = logging.getLogger(__name__)

#: Name under which the worker registers `imaging.jobs.generate_photo`.
GENERATE_PHOTO_JOB = "generate_photo"
MAX_SOURCE_KEY_CHARS = 200


def photo_job_id(photo_id: int) -> str:
    """The arq job id of a photo's generation job: one queued job per photo."""
    return f"photo:{photo_id}"


async def enqueue_photo_job(redis: ArqRedis, photo_id: int) -> bool:
    """Enqueue `generate_photo(photo_id)`; False when a job for the photo is already queued or running."""
    job = await redis.enqueue_job(GENERATE_PHOTO_JOB, photo_id, _job_id=photo_job_id(photo_id))
    return job is not None


class PhotoService:
    """Records photo requests and dispatches their generation jobs (implements `core.ports.PhotoRequests`)."""

    def __init__(self, redis: ArqRedis) -> None:
        self._redis = redis

    async def request_photo(
        self,
        *,
        user_id: int,
        avatar_id: int,
        kind: PhotoKind,
        scene: str | None,
        source_key: str,
        ref: ChatRef,
    ) -> int:
        """Record a queued photo and its "requested" audit row; a repeated `source_key` returns the first photo.

        `ref` is the chat the request came from: the notice goes there, and its channel is audited.
        """
        if not source_key or len(source_key) > MAX_SOURCE_KEY_CHARS:
            raise ValueError(f"source_key must be 1..{MAX_SOURCE_KEY_CHARS} characters")
        existing = await Photo.get_or_none(source_key=source_key)
        if existing is not None:
            return int(existing.id)
        try:
            # A savepoint inside the caller's transaction: a lost race rolls back only this insert.
            async with in_transaction():
                photo = await Photo.create(
                    user_id=user_id,
                    avatar_id=avatar_id,
                    kind=PhotoKindChoice(kind),
                    status=PhotoStatus.QUEUED,
                    scene=scene,
                    source_key=source_key,
                    chat_channel=ref.channel,
                    chat_id=ref.chat_id,
                )
                await PhotoAudit.create(
                    photo_id=photo.id,
                    user_ref=user_ref(user_id),
                    channel=ref.channel,
                    kind=photo.kind.value,
                    event=AuditEvent.REQUESTED.value,
                    status=PhotoStatus.QUEUED.value,
                    scene=scene,
                )
        except IntegrityError:
            existing = await Photo.get_or_none(source_key=source_key)
            if existing is None:
                raise
            return int(existing.id)
        logger.info("photo %s requested (%s) for user %s", photo.id, kind, user_id)
        return int(photo.id)

    async def dispatch(self, photo_id: int) -> None:
        """Enqueue the generation job (deduplicated on `photo:<id>` while one is queued or running)."""
        if not await enqueue_photo_job(self._redis, photo_id):
            logger.info("photo %s already has a queued job", photo_id)
