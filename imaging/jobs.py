"""arq jobs of the photo pipeline: `generate_photo`, the `sweep_photos` cron, and dead-letter replay.

The worker's `ctx` must hold ``photo_pipeline`` (a `PhotoPipeline`) and may hold ``photo_stuck_after``
(seconds, default 120); arq itself puts the Redis client in ``ctx["redis"]``. Register the functions with
`photo_functions()` and the cron with `photo_cron_jobs()`.

arq only retries on `arq.Retry` (LIBRARY-NOTES): `generate_photo` translates the pipeline's `RetryLater`
into it, with arq's `job_try` as the attempt number. The job id `photo:<id>` must be reusable by the
sweeper and by replays, hence `keep_result=0`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from arq import Retry
from arq.connections import ArqRedis
from arq.cron import CronJob, cron
from arq.worker import Function, func
from tortoise.transactions import in_transaction

from core.models import DeadLetter, user_ref
from imaging.errors import DeadLetterNotReplayable, RetryLater
from imaging.models import AuditEvent, Photo, PhotoAudit, PhotoStatus
from imaging.pipeline import DEAD_LETTER_JOB, PhotoPipeline
from imaging.service import GENERATE_PHOTO_JOB, enqueue_photo_job

logger = logging.getLogger(__name__)

#: Default age (seconds since the last state change) after which a queued/generating photo is re-enqueued.
DEFAULT_STUCK_AFTER = 120.0
#: Longest a single generation attempt may run (provider timeout + download + post-processing, with margin).
PHOTO_JOB_TIMEOUT = 300
SWEEP_BATCH = 500


async def generate_photo(ctx: dict[str, Any], photo_id: int) -> str:
    """arq job: run the photo pipeline for `photo_id`; a transient failure becomes `arq.Retry`."""
    pipeline: PhotoPipeline = ctx["photo_pipeline"]
    try:
        await pipeline.run(photo_id, attempt=int(ctx.get("job_try", 1)))
    except RetryLater as exc:
        raise Retry(defer=exc.defer) from exc
    photo = await Photo.get_or_none(id=photo_id)
    return photo.status.value if photo is not None else "gone"


async def sweep_photos(ctx: dict[str, Any]) -> int:
    """arq cron: re-enqueue photos stuck in queued/generating (e.g. Redis lost the job); return how many."""
    redis: ArqRedis = ctx["redis"]
    stuck_after = float(ctx.get("photo_stuck_after", DEFAULT_STUCK_AFTER))
    cutoff = datetime.now(UTC) - timedelta(seconds=stuck_after)
    ids = cast(
        list[int],
        await Photo.filter(status__in=(PhotoStatus.QUEUED, PhotoStatus.GENERATING), updated_at__lt=cutoff)
        .order_by("updated_at")
        .limit(SWEEP_BATCH)
        .values_list("id", flat=True),
    )
    enqueued = 0
    for photo_id in ids:
        # Deduplicated on `photo:<id>`: a job still queued, deferred for a retry or running is left alone.
        if await enqueue_photo_job(redis, photo_id):
            enqueued += 1
    if enqueued:
        logger.warning("re-enqueued %s stuck photo job(s)", enqueued)
    return enqueued


async def replay_dead_letter(redis: ArqRedis, dead_letter_id: int) -> int:
    """Re-queue the failed photo of a dead letter (fresh attempts) and enqueue its job; return the photo id."""
    letter = await DeadLetter.get_or_none(id=dead_letter_id)
    if letter is None or letter.job != DEAD_LETTER_JOB:
        raise DeadLetterNotReplayable(f"no photo dead letter {dead_letter_id}")
    photo_id = int(letter.payload["photo_id"])
    now = datetime.now(UTC)
    async with in_transaction():
        if not await DeadLetter.filter(id=dead_letter_id, replayed_at__isnull=True).update(replayed_at=now):
            raise DeadLetterNotReplayable(f"dead letter {dead_letter_id} was already replayed")
        photo = await Photo.get_or_none(id=photo_id)
        if photo is None:
            raise DeadLetterNotReplayable(f"photo {photo_id} of dead letter {dead_letter_id} no longer exists")
        if not await Photo.filter(id=photo_id, status=PhotoStatus.FAILED).update(
            status=PhotoStatus.QUEUED, attempts=0, error=None, updated_at=now
        ):
            raise DeadLetterNotReplayable(f"photo {photo_id} is {photo.status.value}, not failed")
        await PhotoAudit.create(
            photo_id=photo_id,
            user_ref=user_ref(photo.user_id),
            kind=photo.kind.value,
            event=AuditEvent.REPLAYED.value,
            status=PhotoStatus.QUEUED.value,
            scene=photo.scene,
            error=f"replay of dead letter {dead_letter_id}",
        )
    await enqueue_photo_job(redis, photo_id)
    logger.info("dead letter %s replayed: photo %s queued again", dead_letter_id, photo_id)
    return photo_id


def photo_functions(*, timeout: float = PHOTO_JOB_TIMEOUT) -> list[Function]:
    """The photo jobs for `arq.Worker(functions=...)` (`keep_result=0`: the job id is reused)."""
    # max_tries well above the pipeline's own limit: the pipeline decides final failure, never arq.
    return [func(generate_photo, name=GENERATE_PHOTO_JOB, keep_result=0, timeout=timeout, max_tries=20)]


def photo_cron_jobs(*, every_seconds: int = 30, timeout: float = 60) -> list[CronJob]:
    """The sweeper cron for `arq.Worker(cron_jobs=...)`: every `every_seconds` seconds and at worker start.

    arq re-runs a dead worker's job once the longest timeout of ANY of its functions + 10 s has passed, so the
    sweep's `timeout` must not exceed the job timeouts (or it would delay every such recovery)."""
    if not 1 <= every_seconds <= 60 or 60 % every_seconds:
        raise ValueError("every_seconds must divide 60")
    seconds = set(range(0, 60, every_seconds))
    return [cron(sweep_photos, name="sweep_photos", second=seconds, run_at_startup=True, timeout=timeout)]
