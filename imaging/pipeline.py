"""`PhotoPipeline`: one photo from queued to ready (or failed / blocked), safe to run more than once.

prompt -> screening (each field alone, the scene alone, the prompt; rules, then the moderation model) ->
provider (conditioned on the reference's private original: its bytes, or with `reference_by_url` a presigned URL
the provider fetches it from) -> download -> watermark -> C2PA sign -> store -> ready -> notice.

arq delivers at least once, and the sweeper re-enqueues photos Redis lost, so a run may repeat a run that
crashed half-way, or (rarely) overlap another. Every state change is a conditional update (only from a
non-terminal status) committed together with its audit row, so:

- one `Photo` row per request (the requester's `source_key` is unique), and one terminal state: the first
  run to reach it wins, a later run sees it and only notifies again;
- one stored file referenced: a run that stored a file but lost the race deletes its copy;
- one notice to the user: `on_finished` writes it (outbound rows, through the core's turn runner) INSIDE the
  transaction that moves the photo to its terminal state, so it exists exactly when that transition won;
  `after_finished` (after the commit) runs the user's ordered delivery, or asks for it (the worker wires the
  turn runner's `drain_here`: this job sends the notice itself when no drain holds the user's slot), and a lost
  kick is found by the sweeper. A send failure is retried by the delivery, never re-raised into this job.

While the provider works, the chat the request came from shows "uploading a photo" (`activity`); when an
attempt failed and will be retried, that chat is told once (`announce` with `photo_retry`: "still trying…").

Quota: a photo (not a reference) consumes one unit of its user's photo quota when its job starts, through the
injected `charge` hook (billing's entitlements, wired in `ava_bot`; imaging never imports billing). The charge
is idempotent on the photo, so retries and overlapping runs consume once. It runs while the prompt is screened
and the reference read (a few round trips each), but its verdict comes first: refused, the photo ends failed
(no dead letter: nothing went wrong) whatever the screening found, and the notice says the quota is used up and
when it renews. A photo that ends blocked or failed for good gives its unit back (`refund`) inside its terminal
transition, so exactly once; a failure met while the charge still ran waits for it first, so the refund always
follows the charge. (A refused photo may thus have had its prompt screened: the moderation model's call is made
for it. The engine offers `send_photo` only while photos are left, so that is a race, not a way in.)

Attempts are counted in the database (`Photo.attempts`), not only by arq's `job_try`, so a job re-enqueued
after Redis lost it, or one that keeps crashing, still stops after `max_attempts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

import httpx
from tortoise.transactions import in_transaction

from core.errors import ModerationUnavailable
from core.messages import ChatRef
from core.models import Avatar, DeadLetter
from core.ports import ActivityKind, PhotoEvent, PhotoKind, PhotoStatusName, QuotaVerdict
from core.safety import Refusal, SafetyChecker, record_refusal
from imaging.download import download_image
from imaging.errors import (
    DownloadFailed,
    DownloadTransient,
    ImagingError,
    InvalidStorageKey,
    PermanentPhotoFailure,
    PhotoNotStored,
    RetryLater,
    StorageError,
)
from imaging.models import AuditEvent, Photo, PhotoKindChoice, PhotoStatus
from imaging.prompt import AvatarTraits, build_prompt
from imaging.provenance import ProvenanceSigner, sign_manifest
from imaging.providers import (
    ContentPolicyError,
    GeneratedImage,
    ImageProvider,
    ImageRequest,
    PermanentProviderError,
    TransientProviderError,
)
from imaging.safety import check_field
from imaging.screening import screen_photo
from imaging.storage import FetchableStore, PhotoStore
from imaging.transitions import move_photo, single_statement
from imaging.watermark import apply_watermark

logger = logging.getLogger(__name__)

#: Dead-letter job name of photo generation (replayed by `imaging.jobs.replay_dead_letter`).
DEAD_LETTER_JOB = "generate_photo"
#: Prefix of `Photo.error` when the model's safety filter refused: the user is told "blocked", not "failed".
CONTENT_POLICY_ERROR = "content_policy"
_TERMINAL = frozenset({PhotoStatus.READY, PhotoStatus.FAILED, PhotoStatus.BLOCKED})
#: Prefix of `Photo.error` when the photo was refused for want of quota (never generated, never dead-lettered).
QUOTA_ERROR = "quota"
#: How long a reference's URL lets the provider fetch it: longer than a prediction may wait in the provider's
#: queue and run (Replicate's is cancelled after `ReplicateImageProvider`'s 120 s by default).
REFERENCE_URL_SECONDS = 600

#: Charges one unit of the photo's quota (idempotent per photo); refunds it.
ChargeHook = Callable[[Photo], Awaitable[QuotaVerdict]]
RefundHook = Callable[[Photo], Awaitable[object]]


async def _nothing(user_id: int) -> None:
    return None


class PhotoPipeline:
    """Generates one photo end to end; `run` is idempotent and safe under at-least-once delivery."""

    def __init__(
        self,
        *,
        provider: ImageProvider,
        store: PhotoStore,
        signer: ProvenanceSigner,
        http: httpx.AsyncClient,
        watermark_text: str,
        on_finished: Callable[[PhotoEvent], Awaitable[None]],
        after_finished: Callable[[int], Awaitable[object]] = _nothing,
        activity: Callable[[ChatRef], AbstractAsyncContextManager[None]] | None = None,
        max_attempts: int = 3,
        backoff_seconds: float = 2.0,
        safety: SafetyChecker | None = None,
        originals: PhotoStore | None = None,
        download_timeout: float = 30.0,
        charge: ChargeHook | None = None,
        refund: RefundHook | None = None,
        announce: Callable[[ChatRef, ActivityKind], Awaitable[object]] | None = None,
        max_postprocessing: int | None = None,
        reference_by_url: bool = False,
        reference_url_seconds: int = REFERENCE_URL_SECONDS,
    ) -> None:
        """`safety`: both layers (default: the rules alone). `originals`: the private store of references'
        unwatermarked originals, which later photos are conditioned on (None: condition on the signed copy).
        `charge` / `refund`: the photo quota (None: photos are not counted). `announce`: shows a one-off
        activity in a chat (None: retries are silent). `max_postprocessing`: photos watermarked and signed at
        once (default: the CPU count). `reference_by_url`: the provider fetches the reference itself, by a URL
        valid `reference_url_seconds`, when its store gives one (S3: a presigned GET; only where the provider can
        reach the bucket), instead of this worker reading it and sending its bytes."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        # Post-processing is CPU work in threads holding several decoded copies of a photo (tens of MB each): more
        # at once than there are CPUs finishes no sooner and only raises the worker's peak memory (each thread
        # also gets its own malloc arena). Photo jobs beyond it wait here, after their provider call.
        self._postprocessing = asyncio.Semaphore(max_postprocessing or os.cpu_count() or 1)
        self._provider = provider
        self._store = store
        self._signer = signer
        self._http = http
        self._watermark_text = watermark_text
        self._on_finished = on_finished
        self._after_finished = after_finished
        self._activity = activity
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._safety = safety or SafetyChecker(check_field)
        self._originals = originals
        self._download_timeout = download_timeout
        self._charge = charge
        self._refund = refund
        self._announce = announce
        self._reference_by_url = reference_by_url
        self._reference_url_seconds = reference_url_seconds

    @property
    def max_attempts(self) -> int:
        """How many generation attempts a photo gets before it fails for good."""
        return self._max_attempts

    async def run(self, photo_id: int, attempt: int) -> None:
        """Take photo `photo_id` to a terminal state and notify; raises `RetryLater` for a transient failure."""
        photo = await Photo.get_or_none(id=photo_id).select_related("avatar")  # one query for both rows
        if photo is None:
            logger.info("photo %s no longer exists (erased?): nothing to do", photo_id)
            return
        if photo.status in _TERMINAL:  # its notice was written with the transition: make sure delivery runs
            await self._after_finished(photo.user_id)
            return
        attempt = max(attempt, photo.attempts + 1)
        if attempt > self._max_attempts:  # crashed runs used up the attempts (see the module docstring)
            await self._fail(photo, f"gave up after {photo.attempts} attempts (jobs kept crashing)", attempt)
            return
        try:
            await self._generate(photo, attempt)
        except PermanentPhotoFailure as exc:
            await self._fail(photo, str(exc), attempt)
        except ContentPolicyError as exc:
            await self._fail(photo, f"{CONTENT_POLICY_ERROR}: {exc}", attempt, dead_letter=False, job_id=exc.job_id)
        except PermanentProviderError as exc:
            await self._fail(photo, f"provider refused: {exc}", attempt, job_id=exc.job_id)
        except (TransientProviderError, DownloadTransient, ModerationUnavailable) as exc:
            # ModerationUnavailable: fail closed, the photo waits and retries, it is never made unchecked.
            retry_after = exc.retry_after if isinstance(exc, TransientProviderError) else None
            job_id = exc.job_id if isinstance(exc, TransientProviderError) else None
            await self._transient(photo, f"{type(exc).__name__}: {exc}", attempt, retry_after, job_id)

    # -- the happy path ------------------------------------------------------------------------------------

    async def _generate(self, photo: Photo, attempt: int) -> None:
        # The photo's unit is charged (idempotent per photo: a retry or an overlapping run charges once) while the
        # prompt is screened and the reference read, each a few round trips. Its verdict still comes first, as if
        # charged before anything else: refused, the photo is refused whatever the screening found or raised; and
        # any failure waits for the charge to end, so that a refund of the failed photo follows its charge.
        charge = self._charge if photo.kind == PhotoKindChoice.PHOTO else None  # references are not counted
        charging = asyncio.ensure_future(charge(photo)) if charge is not None else None
        try:
            prompt, refusal, reference, reference_url = await self._screen(photo)
        except BaseException as exc:
            if charging is None:
                raise
            if not isinstance(exc, Exception):  # cancelled (timeout, shutdown): the charge ends on its own
                charging.add_done_callback(_retrieve)
                raise
            if await self._refused(photo, await charging, attempt):
                return
            raise
        if charging is not None and await self._refused(photo, await charging, attempt):
            return
        if refusal is not None:
            await self._block(photo, prompt, refusal)
            return

        won = await self._transition(
            photo,
            PhotoStatus.GENERATING,
            AuditEvent.GENERATING,
            updates={"attempts": attempt, "prompt": prompt},
            audit={"prompt": prompt, "safety_allowed": True, "safety_reason": None},
        )
        if not won:
            await self._after_finished(photo.user_id)
            return
        photo.prompt = prompt

        async with self._showing(photo):
            request = ImageRequest(prompt=prompt, reference_image=reference, reference_image_url=reference_url)
            result = await self._provider.generate(request)
            raw = await self._image_bytes(result)
        try:
            async with self._postprocessing:  # one worker thread for both steps (the native code releases the GIL)
                signed = await asyncio.to_thread(self._postprocess, raw, photo.id, result)
        except ImagingError as exc:  # undecodable provider output, or signing credentials C2PA refuses
            raise PermanentPhotoFailure(f"post-processing failed: {type(exc).__name__}: {exc}") from exc
        try:
            original_key = await self._keep_original(raw) if photo.kind == PhotoKindChoice.REFERENCE else None
            key = await self._store.put(signed, suffix=".jpg")
        except StorageError as exc:
            raise TransientProviderError(f"could not store the photo: {exc}") from exc

        details: dict[str, Any] = {
            "provider": result.provider,
            "model": result.model,
            "seed": result.seed,
            "provider_job_id": result.job_id,
            "storage_key": key,
        }
        if original_key is not None:
            details["original_key"] = original_key
        try:
            won = await self._transition(
                photo,
                PhotoStatus.READY,
                AuditEvent.READY,
                updates={**details, "ready_at": _now(), "error": None},
                audit={**details, "prompt": prompt},
                finished="ready",
            )
        except Exception:
            # Rolled back (the notice could not be written...): drop our file unless a commit did land with it.
            with contextlib.suppress(Exception):
                if not await Photo.exists(id=photo.id, storage_key=key):
                    await self._drop_files(key, original_key)
            raise
        if not won:  # an overlapping run finished first: keep exactly one stored file referenced
            await self._drop_files(key, original_key)
            logger.info("photo %s finished by another run; dropped duplicate file", photo.id)
        else:
            logger.info("photo %s ready (%s, attempt %s)", photo.id, result.model, attempt)
        await self._after_finished(photo.user_id)

    async def _refused(self, photo: Photo, verdict: QuotaVerdict, attempt: int) -> bool:
        """Refuse the photo when its charge was (no unit left, no subscription); whether it was."""
        if verdict.allowed:
            return False
        await self._refuse(photo, verdict, attempt)
        return True

    async def _screen(self, photo: Photo) -> tuple[str, Refusal | None, bytes | None, str | None]:
        """The photo's prompt, the screening's refusal (None: allowed) and, for an allowed photo conditioned on the
        reference, the reference's bytes or URL."""
        avatar: Avatar | None = photo.avatar  # loaded with the photo (`run`)
        if avatar is None:
            raise PermanentPhotoFailure(f"avatar {photo.avatar_id} no longer exists")
        kind: PhotoKind = photo.kind.value
        try:
            prompt = build_prompt(_traits(avatar), photo.scene if kind == "photo" else None, kind=kind)
        except ValueError as exc:
            raise PermanentPhotoFailure(f"cannot build the prompt: {exc}") from exc

        # The reference (its row, then its file) is read while the screening runs (the moderation model is a
        # network call); it is only used, and its errors only count, once the screening allowed the photo.
        reading = asyncio.ensure_future(self._reference(avatar)) if kind == "photo" else None
        try:
            if reading is not None:
                await asyncio.sleep(0)  # let it send its query before the rules' CPU work holds the loop
            refusal = await screen_photo(self._safety, avatar, photo.scene if kind == "photo" else None, prompt)
            reference, reference_url = await reading if reading is not None and refusal is None else (None, None)
        finally:
            if reading is not None:  # unused when refused, or when the screening failed: stop it, ignore its end
                reading.cancel()
                reading.add_done_callback(_retrieve)
        return prompt, refusal, reference, reference_url

    def _postprocess(self, raw: bytes, photo_id: int, result: GeneratedImage) -> bytes:
        """Watermark, then C2PA-sign (in a worker thread)."""
        marked = apply_watermark(raw, self._watermark_text)
        return sign_manifest(
            marked, photo_id=photo_id, model=result.model, provider=result.provider, signer=self._signer
        )

    async def _keep_original(self, raw: bytes) -> str | None:
        """Store a reference's unwatermarked original privately (later photos are conditioned on it)."""
        if self._originals is None:
            return None
        return await self._originals.put(raw, suffix=".jpg")

    async def _drop_files(self, key: str, original_key: str | None) -> None:
        await self._store.delete(key)
        if original_key is not None and self._originals is not None:
            await self._originals.delete(original_key)

    def _showing(self, photo: Photo) -> AbstractAsyncContextManager[None]:
        """ "Uploading a photo" in the chat the request came from, while the provider works."""
        if self._activity is None or not photo.chat_channel or not photo.chat_id:
            return contextlib.nullcontext()
        return self._activity(ChatRef(photo.chat_channel, photo.chat_id))

    async def _reference(self, avatar: Avatar) -> tuple[bytes | None, str | None]:
        """The avatar's approved reference photo for the provider: its stored JPEG, or (`reference_by_url`, from a
        store that gives one) a short-lived URL of it, which keeps the reference, its data URI and the input the
        provider echoes back (about 1 MB per photo job in flight) out of this worker's memory, and the read out of
        its time."""
        if avatar.reference_photo_id is None or avatar.approved_at is None:
            raise PermanentPhotoFailure(f"avatar {avatar.id} has no approved reference photo")
        reference = await Photo.get_or_none(id=avatar.reference_photo_id, avatar_id=avatar.id)
        if reference is None or reference.status != PhotoStatus.READY or reference.storage_key is None:
            raise PermanentPhotoFailure(
                f"reference photo {avatar.reference_photo_id} of avatar {avatar.id} is not ready"
            )
        store, key = self._store, reference.storage_key
        if reference.original_key is not None and self._originals is not None:
            store, key = self._originals, reference.original_key  # clean: no watermark to copy
        else:
            logger.warning("reference photo %s has no original: conditioning on its signed copy", reference.id)
        try:
            if self._reference_by_url and isinstance(store, FetchableStore):
                return None, await store.fetch_url(key, expires_in=self._reference_url_seconds)
            return await store.get(key), None
        except (PhotoNotStored, InvalidStorageKey) as exc:
            raise PermanentPhotoFailure(f"reference photo {reference.id} cannot be read: {exc}") from exc
        except StorageError as exc:  # the store is unreachable or failing (S3 down): worth another attempt
            raise TransientProviderError(f"reference photo {reference.id} cannot be read: {exc}") from exc

    async def _image_bytes(self, result: GeneratedImage) -> bytes:
        if result.data is not None:
            return result.data
        if result.url is None:
            raise TransientProviderError("the provider returned neither image bytes nor a URL", job_id=result.job_id)
        try:
            return await download_image(self._http, result.url, timeout=self._download_timeout)
        except DownloadTransient:
            raise
        except DownloadFailed as exc:
            raise PermanentPhotoFailure(f"download failed: {type(exc).__name__}: {exc}") from exc

    # -- other endings ---------------------------------------------------------------------------------------

    async def _refuse(self, photo: Photo, verdict: QuotaVerdict, attempt: int) -> None:
        """No unit left (or no subscription any more): the photo fails at once, the user is told why."""
        error = f"{QUOTA_ERROR}: {verdict.reason or 'refused'} (limit {verdict.limit})"
        logger.info("photo %s of user %s refused: %s", photo.id, photo.user_id, error)
        await self._transition(
            photo,
            PhotoStatus.FAILED,
            AuditEvent.FAILED,
            updates={"error": error, "attempts": max(attempt - 1, photo.attempts)},
            audit={"error": error},
            finished="failed",
            quota=verdict,
        )
        await self._after_finished(photo.user_id)

    async def _block(self, photo: Photo, prompt: str, refusal: Refusal) -> None:
        why = f"{refusal.field} refused by {refusal.layer}: {refusal.reason or refusal.code}"
        logger.info("photo %s blocked: %s", photo.id, why)
        await self._transition(
            photo,
            PhotoStatus.BLOCKED,
            AuditEvent.BLOCKED,
            updates={"prompt": prompt, "error": f"prompt safety: {why}"},
            audit={"prompt": prompt, "safety_allowed": False, "safety_reason": why},
            finished="blocked",
            refusal=refusal,
        )
        await self._after_finished(photo.user_id)

    async def _transient(
        self, photo: Photo, error: str, attempt: int, retry_after: float | None, job_id: str | None
    ) -> None:
        if attempt >= self._max_attempts:
            await self._fail(photo, f"gave up after {attempt} attempts: {error}", attempt, job_id=job_id)
            return
        defer = max(self._backoff * 2 ** (attempt - 1), retry_after or 0.0)
        logger.warning("photo %s attempt %s failed, retrying in %.2f s: %s", photo.id, attempt, defer, error)
        won = await self._transition(
            photo,
            PhotoStatus.QUEUED,
            AuditEvent.RETRY,
            updates={"error": error, "attempts": attempt},
            audit={"error": error, "provider_job_id": job_id},
        )
        if not won:
            await self._after_finished(photo.user_id)
            return
        await self._announce_retry(photo)
        raise RetryLater(defer, error)

    async def _announce_retry(self, photo: Photo) -> None:
        """ "Still trying…" in the chat the request came from; best effort (a hint never fails the job)."""
        if self._announce is None or not photo.chat_channel or not photo.chat_id:
            return
        try:
            await self._announce(ChatRef(photo.chat_channel, photo.chat_id), "photo_retry")
        except Exception as exc:
            logger.debug("retry of photo %s not announced: %r", photo.id, exc)

    async def _fail(
        self, photo: Photo, error: str, attempt: int, *, dead_letter: bool = True, job_id: str | None = None
    ) -> None:
        logger.warning("photo %s failed: %s", photo.id, error)
        await self._transition(
            photo,
            PhotoStatus.FAILED,
            AuditEvent.FAILED,
            updates={"error": error, "attempts": max(attempt, photo.attempts)},
            audit={"error": error, "provider_job_id": job_id},
            dead_letter=({"photo_id": photo.id}, error, attempt) if dead_letter else None,
            finished=_status_for_failed(error),
        )
        await self._after_finished(photo.user_id)

    # -- state changes and notification ------------------------------------------------------------------------

    async def _transition(
        self,
        photo: Photo,
        status: PhotoStatus,
        event: AuditEvent,
        *,
        updates: dict[str, Any],
        audit: dict[str, Any],
        dead_letter: tuple[dict[str, Any], str, int] | None = None,
        finished: PhotoStatusName | None = None,
        refusal: Refusal | None = None,
        quota: QuotaVerdict | None = None,
    ) -> bool:
        """Move an active photo to `status` with its audit row (and dead letter, and for a terminal status the
        user's notice) atomically: one transaction, or on PostgreSQL one statement when only the move and its audit
        row are written; False if it was no longer active (another run finished it)."""
        alone = status not in _TERMINAL and dead_letter is None and refusal is None and finished is None
        if alone and single_statement():  # GENERATING, or back to QUEUED for a retry: one atomic statement
            if not await move_photo(photo, status, event.value, updates=updates, audit=audit):
                return False
            photo.status = status
            return True
        async with in_transaction():
            if not await move_photo(photo, status, event.value, updates=updates, audit=audit):
                return False
            if dead_letter is not None:
                payload, error, attempts = dead_letter
                await DeadLetter.create(job=DEAD_LETTER_JOB, payload=payload, error=error, attempts=attempts)
            if refusal is not None:
                await record_refusal(photo.user_id, refusal, channel=photo.chat_channel, photo_id=photo.id)
            if status in (PhotoStatus.FAILED, PhotoStatus.BLOCKED) and quota is None:
                await self._give_back(photo)
            if finished is not None:
                await self._on_finished(_event(photo, finished, quota))
        photo.status = status
        return True

    async def _give_back(self, photo: Photo) -> None:
        """Refund the photo's unit (inside the terminal transition: it runs once, when the transition wins)."""
        if photo.kind == PhotoKindChoice.PHOTO and self._refund is not None:
            await self._refund(photo)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a discarded task's outcome as seen (asyncio would log an exception nobody retrieved)."""
    if not task.cancelled():
        task.exception()


def _traits(avatar: Avatar) -> AvatarTraits:
    return AvatarTraits(
        name=avatar.name,
        gender=avatar.gender,
        age=avatar.age,
        nationality=avatar.nationality,
        appearance=avatar.appearance,
        personality=avatar.personality,
    )


def _event(photo: Photo, status: PhotoStatusName, quota: QuotaVerdict | None = None) -> PhotoEvent:
    ref = ChatRef(photo.chat_channel, photo.chat_id) if photo.chat_channel and photo.chat_id else None
    return PhotoEvent(
        user_id=photo.user_id,
        photo_id=photo.id,
        kind=photo.kind.value,
        status=status,
        avatar_id=photo.avatar_id,
        ref=ref,
        reason="subscription" if quota is not None and quota.reason == "subscription" else "quota" if quota else None,
        limit=quota.limit if quota is not None else None,
        renews_at=quota.renews_at if quota is not None else None,
    )


def _status_for_failed(error: str | None) -> PhotoStatusName:
    """A content-policy refusal is reported to the user as "blocked", any other failure as "failed"."""
    return "blocked" if (error or "").startswith(CONTENT_POLICY_ERROR) else "failed"


def _now() -> datetime:
    return datetime.now(UTC)
