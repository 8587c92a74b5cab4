"""The photo pipeline end to end: real PostgreSQL, Redis and arq worker, the real Replicate client against the
fake Replicate API, real watermarking, C2PA signing and file storage."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from arq.connections import ArqRedis
from PIL import Image
from tortoise import connections
from tortoise.backends.base.client import TransactionalDBClient

from core.messages import ChatRef
from core.models import DeadLetter, Direction, Message
from core.ports import PhotoEvent, PhotoRequests
from imaging.errors import DeadLetterNotReplayable, RetryLater
from imaging.jobs import photo_cron_jobs, photo_functions, replay_dead_letter, sweep_photos
from imaging.models import Photo, PhotoAudit, PhotoStatus
from imaging.provenance import TRAINED_ALGORITHMIC_MEDIA, active_assertions, read_manifest
from imaging.service import PhotoService
from imaging.watermark import watermark_box
from tests.conftest import _asyncpg_dsn
from tests.imaging.pipeline_env import (
    CHAT,
    EDIT_MODEL,
    REFERENCE_MODEL,
    SCENE,
    WATERMARK,
    CountingSigner,
    Crash,
    CrashOnce,
    Env,
    _avatar,
    _ready_reference,
    _request,
)


async def _events(photo_id: int) -> list[str]:
    return [a.event for a in await PhotoAudit.filter(photo_id=photo_id).order_by("id")]


async def _notices() -> list[tuple[object, object]]:
    """(photo id, status) of every committed notice row `on_finished` wrote, oldest first."""
    rows = await Message.filter(direction=Direction.OUTBOUND).order_by("id")
    return [((r.payload or {}).get("photo_id"), (r.payload or {}).get("status")) for r in rows]


def _decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


# -- happy paths ----------------------------------------------------------------------------------------------


def test_photo_service_satisfies_the_port(redis: ArqRedis) -> None:
    """`PhotoService` implements `core.ports.PhotoRequests`."""
    assert isinstance(PhotoService(redis), PhotoRequests)


async def test_reference_then_photo_conditioned_on_the_stored_reference(env: Env) -> None:
    """The reference portrait uses the text-to-image model; a later photo sends it to Kontext as `input_image`."""
    avatar, reference = await _ready_reference(env)
    assert env.fake.created[0].model == REFERENCE_MODEL
    assert "input_image" not in env.fake.created[0].input
    assert reference.kind == "reference" and reference.storage_key and reference.ready_at is not None
    assert (reference.provider, reference.model, reference.seed) == ("replicate", REFERENCE_MODEL, 1234)
    assert reference.provider_job_id in env.fake.predictions

    photo_id = await _request(env, avatar, key="chat:1")
    await env.work()

    photo = await Photo.get(id=photo_id)
    assert photo.status == PhotoStatus.READY and photo.model == EDIT_MODEL and photo.attempts == 1
    assert env.fake.created[1].model == EDIT_MODEL
    stored_reference = await env.store.get(reference.storage_key)
    expected = "data:image/jpeg;base64," + base64.b64encode(stored_reference).decode()
    assert env.fake.created[1].input["input_image"] == expected
    assert SCENE in env.fake.created[1].input["prompt"]
    user_id = avatar.user_id  # type: ignore[attr-defined]
    assert env.hooks.finished == [
        PhotoEvent(user_id, reference.id, "reference", "ready", avatar.id, CHAT),
        PhotoEvent(user_id, photo_id, "photo", "ready", avatar.id, CHAT),
    ]
    assert env.hooks.kicks == [user_id, user_id]
    assert await _notices() == [(reference.id, "ready"), (photo_id, "ready")]
    assert await _events(photo_id) == ["requested", "generating", "ready"]
    audit = await PhotoAudit.filter(photo_id=photo_id, event="ready").get()
    assert audit.user_ref == f"user:{user_id}"
    assert (audit.model, audit.storage_key, audit.scene) == (EDIT_MODEL, photo.storage_key, SCENE)
    assert audit.prompt == photo.prompt and SCENE in (audit.prompt or "")


async def test_stored_photo_is_watermarked_and_c2pa_signed(env: Env) -> None:
    """The stored JPEG differs from the provider's inside the watermark box and carries a Trusted AI manifest."""
    _, reference = await _ready_reference(env)
    assert reference.storage_key is not None
    stored = await env.store.get(reference.storage_key)
    original, marked = _decode(env.fake.jpeg), _decode(stored)
    assert marked.size == original.size
    box = watermark_box(marked.size, WATERMARK)
    assert marked.crop(box).tobytes() != original.crop(box).tobytes()

    report = read_manifest(stored, trust_anchor_pem=env.certs.ca_cert.read_text())
    assert report["validation_state"] == "Trusted"
    actions = active_assertions(report)["c2pa.actions.v2"]["actions"]
    assert actions[0]["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert active_assertions(report)["com.ava.photo"]["photo_id"] == reference.id


async def test_request_is_idempotent_on_source_key(env: Env) -> None:
    """Requesting twice with one source key gives one photo, one audit row, one queued job."""
    avatar = await _avatar()
    first = await _request(env, avatar, key="chat:9")
    second = await _request(env, avatar, key="chat:9")
    assert first == second
    assert await Photo.all().count() == 1
    assert await _events(first) == ["requested"]
    assert await env.redis.zcard(env.redis.default_queue_name) == 1


# -- the hooks: notice in the transaction, kick after it, activity while generating ---------------------------


async def test_on_finished_runs_inside_the_terminal_transaction(env: Env, db: str) -> None:
    """The notice row `on_finished` writes commits with the ready status: other connections see neither until
    the commit, and `after_finished` runs only after it."""
    avatar = await _avatar()
    photo_id = await _request(env, avatar, kind="reference")
    other = await asyncpg.connect(_asyncpg_dsn(db))
    status_sql, notices_sql = "SELECT status FROM photos WHERE id = $1", "SELECT count(*) FROM messages"
    seen: list[tuple[object, ...]] = []

    async def on_finished(event: PhotoEvent) -> None:
        await env.hooks.on_finished(event)
        in_transaction = isinstance(connections.get("default"), TransactionalDBClient)
        own_view = ((await Photo.get(id=photo_id)).status, await Message.all().count())
        other_view = (await other.fetchval(status_sql, photo_id), await other.fetchval(notices_sql))
        seen.append(("on_finished", in_transaction, own_view, other_view))

    async def after_finished(user_id: int) -> None:
        await env.hooks.after_finished(user_id)
        seen.append(("after_finished", (await other.fetchval(status_sql, photo_id), await other.fetchval(notices_sql))))

    try:
        await env.pipeline(on_finished=on_finished, after_finished=after_finished).run(photo_id, attempt=1)
    finally:
        await other.close()
    assert seen == [
        ("on_finished", True, (PhotoStatus.READY, 1), ("generating", 0)),
        ("after_finished", ("ready", 1)),
    ]
    assert await _notices() == [(photo_id, "ready")]


async def test_failing_on_finished_rolls_the_ready_transition_back(env: Env) -> None:
    """`on_finished` raising undoes the whole transition (photo still generating, no ready audit, no notice, no
    kick); the sweeper's re-run finishes it with exactly one notice."""
    avatar = await _avatar()
    photo_id = await _request(env, avatar, kind="reference")
    env.hooks.fail_next = 1
    with pytest.raises(RuntimeError, match="notice store down"):
        await env.pipeline().run(photo_id, attempt=1)
    photo = await Photo.get(id=photo_id)
    assert (photo.status, photo.storage_key, photo.ready_at) == (PhotoStatus.GENERATING, None, None)
    assert await _events(photo_id) == ["requested", "generating"]
    assert await _notices() == [] and env.hooks.kicks == []
    assert await DeadLetter.all().count() == 0

    await env.redis.flushdb()  # arq does not retry a job that raised (only `Retry`): the sweeper must find it
    assert await sweep_photos({"redis": env.redis, "photo_stuck_after": 0}) == 1
    await env.work()
    photo = await Photo.get(id=photo_id)
    assert (photo.status, photo.attempts) == (PhotoStatus.READY, 2)
    assert await _events(photo_id) == ["requested", "generating", "generating", "ready"]
    assert [e.status for e in env.hooks.finished] == ["ready", "ready"]  # the first one was rolled back
    assert await _notices() == [(photo_id, "ready")]
    assert env.hooks.kicks == [avatar.user_id]  # type: ignore[attr-defined]
    assert photo.storage_key and env.store.root / photo.storage_key in env.stored_files()


async def test_rolled_back_ready_transition_deletes_its_file(env: Env) -> None:
    """A run whose ready transition rolled back deletes the file it stored, as a run that lost the race does."""
    avatar = await _avatar()
    photo_id = await _request(env, avatar, kind="reference")
    env.hooks.fail_next = 1
    with pytest.raises(RuntimeError):
        await env.pipeline().run(photo_id, attempt=1)
    assert env.stored_files() == []


async def test_failing_on_finished_rolls_the_failed_transition_back(env: Env) -> None:
    """A failure whose notice cannot be written leaves no failed audit row and no dead letter; the re-run fails
    the photo with one dead letter and one notice."""
    avatar = await _avatar()
    env.fake.fail_next(2, status=422)
    photo_id = await _request(env, avatar, kind="reference")
    env.hooks.fail_next = 1
    pipeline = env.pipeline()
    with pytest.raises(RuntimeError, match="notice store down"):
        await pipeline.run(photo_id, attempt=1)
    assert (await Photo.get(id=photo_id)).status == PhotoStatus.GENERATING
    assert await _events(photo_id) == ["requested", "generating"]
    assert await DeadLetter.all().count() == 0 and await _notices() == []

    await pipeline.run(photo_id, attempt=1)
    photo = await Photo.get(id=photo_id)
    assert (photo.status, photo.attempts) == (PhotoStatus.FAILED, 2)
    assert await _events(photo_id) == ["requested", "generating", "generating", "failed"]
    assert (await DeadLetter.get()).payload == {"photo_id": photo_id}
    assert await _notices() == [(photo_id, "failed")]


async def test_activity_shows_in_the_request_chat_while_the_provider_works(env: Env) -> None:
    """ "Uploading a photo" shows in the request's chat from before the provider call until the image is
    downloaded, and ends before post-processing (signing, storing) starts."""
    avatar = await _avatar()
    chat = ChatRef("whatsapp", "+391234567890")
    photo_id = await _request(env, avatar, kind="reference", ref=chat)
    signer = CountingSigner.from_files(env.certs.chain, env.certs.signer_key)
    assert isinstance(signer, CountingSigner)
    seen: list[tuple[object, ...]] = []

    @asynccontextmanager
    async def activity(ref: ChatRef) -> AsyncIterator[None]:
        seen.append(("enter", ref, len(env.fake.requests)))
        yield
        status = (await Photo.get(id=photo_id)).status
        made = (env.creates(REFERENCE_MODEL), env.downloads())
        seen.append(("exit", ref, made, signer.signed, env.stored_files(), status))

    await env.pipeline(activity=activity, signer=signer).run(photo_id, attempt=1)
    assert seen == [("enter", chat, 0), ("exit", chat, (1, 1), 0, [], PhotoStatus.GENERATING)]
    assert signer.signed == 1 and (await Photo.get(id=photo_id)).status == PhotoStatus.READY
    assert env.hooks.finished[0].ref == chat and await _notices() == [(photo_id, "ready")]


async def test_photo_without_a_chat_shows_no_activity(env: Env) -> None:
    """A photo with no recorded chat is generated without an activity, and its event carries no chat."""
    avatar = await _avatar()
    photo_id = await _request(env, avatar, kind="reference")
    await Photo.filter(id=photo_id).update(chat_channel=None, chat_id=None)
    await env.work()
    assert (await Photo.get(id=photo_id)).status == PhotoStatus.READY
    assert env.hooks.shown == []
    assert [(e.status, e.ref) for e in env.hooks.finished] == [("ready", None)]


# -- retries and failures -------------------------------------------------------------------------------------


async def test_server_error_then_success_takes_two_attempts(env: Env) -> None:
    """A 500 from Replicate is retried with backoff; the second attempt makes the photo."""
    avatar = await _avatar()
    env.fake.fail_next(1, status=500)
    photo_id = await _request(env, avatar, kind="reference")
    await env.work()
    photo = await Photo.get(id=photo_id)
    assert (photo.status, photo.attempts) == (PhotoStatus.READY, 2)
    assert not photo.error
    assert env.creates(REFERENCE_MODEL) == 2
    assert await _events(photo_id) == ["requested", "generating", "retry", "generating", "ready"]
    retry = await PhotoAudit.filter(photo_id=photo_id, event="retry").get()
    assert "500" in (retry.error or "")
    assert [e.status for e in env.hooks.finished] == ["ready"]
    assert env.hooks.shown == [("enter", CHAT), ("exit", CHAT)] * 2  # left even when the provider failed


async def test_three_failures_dead_letter_the_job(env: Env) -> None:
    """Three transient failures: a dead letter, the photo failed, the user told once."""
    avatar = await _avatar()
    env.fake.fail_next(3, status=503)
    photo_id = await _request(env, avatar, kind="reference")
    await env.work()
    photo = await Photo.get(id=photo_id)
    assert (photo.status, photo.attempts, photo.storage_key) == (PhotoStatus.FAILED, 3, None)
    assert env.creates(REFERENCE_MODEL) == 3
    letter = await DeadLetter.get()
    assert (letter.job, letter.payload, letter.attempts) == ("generate_photo", {"photo_id": photo_id}, 3)
    assert "503" in letter.error
    assert [(e.photo_id, e.status) for e in env.hooks.finished] == [(photo_id, "failed")]
    assert await _notices() == [(photo_id, "failed")]
    events = await _events(photo_id)
    assert events == ["requested", "generating", "retry", "generating", "retry", "generating", "failed"]
    assert env.stored_files() == []


async def test_dead_letter_replay_requeues_and_completes(env: Env) -> None:
    """Replaying a dead letter gives the photo fresh attempts; a second replay is refused."""
    avatar = await _avatar()
    env.fake.fail_next(3, status=500)
    photo_id = await _request(env, avatar, kind="reference")
    await env.work()
    letter = await DeadLetter.get()
    assert await replay_dead_letter(env.redis, letter.id) == photo_id
    await env.work()
    photo = await Photo.get(id=photo_id)
    assert (photo.status, photo.attempts) == (PhotoStatus.READY, 1)
    assert (await DeadLetter.get()).replayed_at is not None
    assert [e.status for e in env.hooks.finished] == ["failed", "ready"]
    assert await _notices() == [(photo_id, "failed"), (photo_id, "ready")]
    assert (await _events(photo_id))[-3:] == ["replayed", "generating", "ready"]
    with pytest.raises(DeadLetterNotReplayable):
        await replay_dead_letter(env.redis, letter.id)


async def test_rate_limit_honours_retry_after(env: Env) -> None:
    """A 429's Retry-After beats a shorter backoff; a retry is not an ending, so no hook runs."""
    avatar = await _avatar()
    env.fake.rate_limit_next(retry_after=7)
    photo_id = await _request(env, avatar, kind="reference")
    with pytest.raises(RetryLater) as info:
        await env.pipeline().run(photo_id, attempt=1)
    assert info.value.defer == 7
    assert (await Photo.get(id=photo_id)).status == PhotoStatus.QUEUED
    assert env.hooks.finished == [] and env.hooks.kicks == []


async def test_content_policy_refusal_is_not_retried(env: Env) -> None:
    """A safety-filter refusal from the model: one provider call, photo failed, user told "blocked"."""
    avatar = await _avatar()
    env.fake.policy_fail_next()
    photo_id = await _request(env, avatar, kind="reference")
    await env.work()
    photo = await Photo.get(id=photo_id)
    assert photo.status == PhotoStatus.FAILED
    assert (photo.error or "").startswith("content_policy")
    assert env.creates(REFERENCE_MODEL) == 1
    assert await DeadLetter.all().count() == 0
    assert [e.status for e in env.hooks.finished] == ["blocked"]
    assert await _events(photo_id) == ["requested", "generating", "failed"]
    failed = await PhotoAudit.filter(photo_id=photo_id, event="failed").get()
    assert "flagged as sensitive" in (failed.error or "") and failed.provider_job_id


async def test_permanent_provider_error_fails_at_once(env: Env) -> None:
    """A 422 from Replicate is not retried: failed, dead-lettered, user told."""
    avatar = await _avatar()
    env.fake.fail_next(1, status=422)
    photo_id = await _request(env, avatar, kind="reference")
    await env.work()
    assert (await Photo.get(id=photo_id)).status == PhotoStatus.FAILED
    assert env.creates(REFERENCE_MODEL) == 1
    assert await DeadLetter.all().count() == 1
    assert [e.status for e in env.hooks.finished] == ["failed"]


async def test_safety_blocked_prompt_never_reaches_the_provider(env: Env) -> None:
    """A scene stating an age under 20 is blocked before generation, with the verdict audited."""
    avatar = await _avatar()
    photo_id = await _request(env, avatar, scene="she is 17 years old, at the beach")
    await env.work()
    photo = await Photo.get(id=photo_id)
    assert photo.status == PhotoStatus.BLOCKED
    assert env.fake.requests == [] and env.hooks.shown == []
    assert [e.status for e in env.hooks.finished] == ["blocked"]
    assert await _notices() == [(photo_id, "blocked")]
    assert env.hooks.kicks == [avatar.user_id]  # type: ignore[attr-defined]
    assert await _events(photo_id) == ["requested", "blocked"]
    blocked = await PhotoAudit.filter(photo_id=photo_id, event="blocked").get()
    assert blocked.safety_allowed is False
    assert (blocked.safety_reason or "").startswith("scene refused by rules: age-under-20")
    assert "17 years old" in (blocked.prompt or "")


async def test_photo_without_approved_reference_fails_permanently(env: Env) -> None:
    """A kind-photo request for an avatar with no approved reference fails without calling the provider."""
    avatar = await _avatar()
    photo_id = await _request(env, avatar)
    await env.work()
    photo = await Photo.get(id=photo_id)
    assert photo.status == PhotoStatus.FAILED and "reference" in (photo.error or "")
    assert env.fake.requests == []
    assert [e.status for e in env.hooks.finished] == ["failed"]


# -- crashes, re-runs and lost jobs ---------------------------------------------------------------------------


async def test_crash_after_commit_reruns_only_kick_delivery(env: Env) -> None:
    """A worker dying right after the ready commit: re-runs find the photo finished and only call
    `after_finished` again; nothing is generated or noticed twice."""
    avatar = await _avatar()
    user_id = avatar.user_id  # type: ignore[attr-defined]
    photo_id = await _request(env, avatar, kind="reference")
    env.hooks.crash_after_commit = 1
    pipeline = env.pipeline()
    with pytest.raises(Crash):
        await pipeline.run(photo_id, attempt=1)
    assert (await Photo.get(id=photo_id)).status == PhotoStatus.READY
    assert await _notices() == [(photo_id, "ready")]

    await pipeline.run(photo_id, attempt=2)
    await pipeline.run(photo_id, attempt=3)  # even a third delivery of the job changes nothing
    assert await Photo.all().count() == 1
    assert len(env.stored_files()) == 1
    assert env.creates(REFERENCE_MODEL) == 1
    assert [(e.photo_id, e.status) for e in env.hooks.finished] == [(photo_id, "ready")]
    assert env.hooks.kicks == [user_id, user_id, user_id]
    assert await _notices() == [(photo_id, "ready")]
    assert await _events(photo_id) == ["requested", "generating", "ready"]


async def test_crash_mid_generation_is_swept_and_completed(env: Env) -> None:
    """A worker dying during generation leaves the photo `generating`; the sweeper re-enqueues it to completion."""
    avatar = await _avatar()
    photo_id = await _request(env, avatar, kind="reference")
    await env.redis.flushdb()  # the dying worker's job is gone with it
    with pytest.raises(Crash):
        await env.pipeline(provider=CrashOnce(env.provider)).run(photo_id, attempt=1)
    assert (await Photo.get(id=photo_id)).status == PhotoStatus.GENERATING
    assert env.hooks.shown == [("enter", CHAT), ("exit", CHAT)]

    assert await sweep_photos({"redis": env.redis, "photo_stuck_after": 0}) == 1
    await env.work()
    photo = await Photo.get(id=photo_id)
    assert (photo.status, photo.attempts) == (PhotoStatus.READY, 2)
    assert len(env.stored_files()) == 1
    assert [e.status for e in env.hooks.finished] == ["ready"]
    assert await _notices() == [(photo_id, "ready")]


async def test_redis_flushed_mid_flow_sweeper_requeues(env: Env) -> None:
    """Redis losing the queued job: the sweeper finds the queued row and the job completes."""
    avatar = await _avatar()
    photo_id = await _request(env, avatar, kind="reference")
    await env.redis.flushdb()
    assert await sweep_photos({"redis": env.redis}) == 0  # not stuck yet by the default 120 s
    assert await sweep_photos({"redis": env.redis, "photo_stuck_after": 0}) == 1
    assert await sweep_photos({"redis": env.redis, "photo_stuck_after": 0}) == 0  # already queued: deduplicated
    await env.work()
    assert (await Photo.get(id=photo_id)).status == PhotoStatus.READY
    assert [e.status for e in env.hooks.finished] == ["ready"]
    assert await sweep_photos({"redis": env.redis, "photo_stuck_after": 0}) == 0


async def test_rerun_of_a_finished_photo_only_kicks_delivery(env: Env) -> None:
    """A job delivered again after the photo finished (arq's at-least-once) calls `after_finished`, never
    `on_finished`, and touches neither the provider nor the audit trail."""
    avatar = await _avatar()
    user_id = avatar.user_id  # type: ignore[attr-defined]
    photo_id = await _request(env, avatar, kind="reference")
    await env.work()
    await env.service.dispatch(photo_id)  # the job id is free again (keep_result=0): a duplicate delivery
    await env.work()
    assert env.creates(REFERENCE_MODEL) == 1 and len(env.stored_files()) == 1
    assert [e.status for e in env.hooks.finished] == ["ready"]
    assert env.hooks.kicks == [user_id, user_id]
    assert await _notices() == [(photo_id, "ready")]
    assert await _events(photo_id) == ["requested", "generating", "ready"]


async def test_overlapping_runs_keep_one_file_and_one_notice(env: Env) -> None:
    """Two runs of one photo at once (lost dedupe): one wins and writes the only notice, the loser deletes its
    file; both kick delivery."""
    avatar = await _avatar()
    user_id = avatar.user_id  # type: ignore[attr-defined]
    photo_id = await _request(env, avatar, kind="reference")
    pipeline = env.pipeline()
    await asyncio.gather(pipeline.run(photo_id, attempt=1), pipeline.run(photo_id, attempt=1))
    photo = await Photo.get(id=photo_id)
    assert photo.status == PhotoStatus.READY
    assert [p.relative_to(env.store.root).as_posix() for p in env.stored_files()] == [photo.storage_key]
    assert (await _events(photo_id)).count("ready") == 1
    assert [e.status for e in env.hooks.finished] == ["ready"]
    assert await _notices() == [(photo_id, "ready")]
    assert env.hooks.kicks == [user_id, user_id]


async def test_erased_photo_job_is_a_no_op(env: Env) -> None:
    """A job for a photo deleted meanwhile (user erased) does nothing and calls no hook."""
    avatar = await _avatar()
    photo_id = await _request(env, avatar, kind="reference")
    await Photo.filter(id=photo_id).delete()
    await env.work()
    assert env.fake.requests == []
    assert env.hooks.finished == [] and env.hooks.kicks == [] and env.hooks.shown == []
    assert await _events(photo_id) == ["requested"]  # the audit trail outlives the photo


def test_worker_registration() -> None:
    """`generate_photo` keeps no result (its job id is reused) and the sweeper cron runs at startup."""
    (function,) = photo_functions()
    assert (function.name, function.keep_result_s) == ("generate_photo", 0)
    (sweeper,) = photo_cron_jobs()
    assert sweeper.name == "sweep_photos" and sweeper.run_at_startup
