"""The photo pipeline end to end: real PostgreSQL, Redis and arq worker, the real Replicate client against the
fake Replicate API, real watermarking, C2PA signing and file storage."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from arq.connections import ArqRedis
from arq.worker import Worker
from PIL import Image

from core.models import Avatar, User
from core.ports import PhotoRequests
from imaging.certs import DevCertificates, create_dev_certificates
from imaging.jobs import DeadLetterNotReplayable, photo_cron_jobs, photo_functions, replay_dead_letter, sweep_photos
from imaging.models import DeadLetter, Photo, PhotoAudit, PhotoStatus
from imaging.pipeline import PhotoOutcome, PhotoPipeline, RetryLater
from imaging.provenance import TRAINED_ALGORITHMIC_MEDIA, ProvenanceSigner, active_assertions, read_manifest
from imaging.providers import GeneratedImage, ImageProvider, ImageRequest
from imaging.providers.replicate import ReplicateImageProvider
from imaging.service import PhotoService
from imaging.storage import LocalPhotoStore
from imaging.watermark import watermark_box
from tests.fakes.replicate import FakeReplicate

TOKEN = "r8_fake_test_token"
REFERENCE_MODEL = "black-forest-labs/flux-1.1-pro"
EDIT_MODEL = "black-forest-labs/flux-kontext-pro"
WATERMARK = "AI-generated - Ava"
SCENE = "reading a book in a sunny cafe"


class Crash(BaseException):
    """Stands for the worker process dying: nothing in the pipeline catches it."""


@dataclass
class Notifier:
    """Records notifications; deduplicates deliveries per (photo, status) as the real outbox does."""

    calls: list[PhotoOutcome] = field(default_factory=list)
    delivered: list[PhotoOutcome] = field(default_factory=list)
    fail_next: int = 0
    crash_next: int = 0

    async def __call__(self, outcome: PhotoOutcome) -> None:
        self.calls.append(outcome)
        if self.crash_next:
            self.crash_next -= 1
            raise Crash
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("channel down")
        if all((d.photo_id, d.status) != (outcome.photo_id, outcome.status) for d in self.delivered):
            self.delivered.append(outcome)


class CrashOnce:
    """A provider that dies (like a killed worker) on its first call, then delegates."""

    def __init__(self, inner: ImageProvider) -> None:
        self.inner = inner
        self.name = inner.name
        self.crashed = False

    async def generate(self, request: ImageRequest) -> GeneratedImage:
        if not self.crashed:
            self.crashed = True
            raise Crash
        return await self.inner.generate(request)


@dataclass
class Env:
    """Everything a pipeline test needs."""

    fake: FakeReplicate
    provider: ReplicateImageProvider
    store: LocalPhotoStore
    signer: ProvenanceSigner
    certs: DevCertificates
    http: httpx.AsyncClient
    redis: ArqRedis
    notes: Notifier
    service: PhotoService

    def pipeline(self, provider: ImageProvider | None = None, **overrides: object) -> PhotoPipeline:
        """A pipeline on this environment with tiny backoff."""
        options: dict[str, object] = {
            "provider": provider or self.provider,
            "store": self.store,
            "signer": self.signer,
            "http": self.http,
            "watermark_text": WATERMARK,
            "notify": self.notes,
            "max_attempts": 3,
            "backoff_seconds": 0.05,
        }
        return PhotoPipeline(**(options | overrides))  # type: ignore[arg-type]

    async def work(self, pipeline: PhotoPipeline | None = None, **ctx: object) -> Worker:
        """Run a real arq worker in burst mode until the queue (deferred retries included) is empty."""
        worker = Worker(
            functions=photo_functions(),
            redis_pool=self.redis,
            burst=True,
            poll_delay=0.01,
            handle_signals=False,
            ctx={"photo_pipeline": pipeline or self.pipeline(), **ctx},
        )
        await asyncio.wait_for(worker.main(), timeout=30)
        return worker

    def creates(self, model: str) -> int:
        """How many create calls reached the fake for `model` (failed ones included)."""
        return len(self.fake.requests_to(f"/v1/models/{model}/predictions", "POST"))

    def stored_files(self) -> list[Path]:
        """Every file in the photo store."""
        return sorted(p for p in self.store.root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> tuple[DevCertificates, ProvenanceSigner]:
    """Development C2PA certificates and a signer built from them."""
    certs = create_dev_certificates(tmp_path_factory.mktemp("certs"))
    return certs, ProvenanceSigner.from_files(certs.chain, certs.signer_key)


@pytest.fixture
async def env(
    db: str, redis: ArqRedis, tmp_path: Path, credentials: tuple[DevCertificates, ProvenanceSigner]
) -> AsyncIterator[Env]:
    """A fake Replicate, the real provider polling it fast, a local store, an HTTP client, a notifier."""
    certs, signer = credentials
    async with FakeReplicate(token=TOKEN) as fake, httpx.AsyncClient() as http:
        assert isinstance(fake, FakeReplicate)
        provider = ReplicateImageProvider(
            TOKEN,
            base_url=fake.url,
            reference_model=REFERENCE_MODEL,
            edit_model=EDIT_MODEL,
            poll_interval=0.01,
            timeout=5,
        )
        try:
            yield Env(
                fake=fake,
                provider=provider,
                store=LocalPhotoStore(tmp_path / "photos"),
                signer=signer,
                certs=certs,
                http=http,
                redis=redis,
                notes=Notifier(),
                service=PhotoService(redis),
            )
        finally:
            await provider.aclose()


async def _avatar() -> Avatar:
    user = await User.create()
    avatar = await Avatar.create(
        user=user,
        name="Giulia",
        gender="woman",
        age=27,
        nationality="Italian",
        appearance="long dark wavy hair, green eyes, freckles",
        personality="playful",
    )
    return avatar


async def _approve(avatar: Avatar, reference_id: int) -> None:
    avatar.reference_photo_id = reference_id
    avatar.approved_at = datetime.now(UTC)
    await avatar.save()


async def _request(env: Env, avatar: Avatar, kind: str = "photo", scene: str | None = SCENE, key: str = "k1") -> int:
    photo_id = await env.service.request_photo(
        user_id=avatar.user_id,  # type: ignore[attr-defined]
        avatar_id=avatar.id,
        kind=kind,  # type: ignore[arg-type]
        scene=scene if kind == "photo" else None,
        source_key=key,
    )
    await env.service.dispatch(photo_id)
    return photo_id


async def _events(photo_id: int) -> list[str]:
    return [a.event for a in await PhotoAudit.filter(photo_id=photo_id).order_by("id")]


async def _ready_reference(env: Env) -> tuple[Avatar, Photo]:
    """An avatar whose reference portrait was generated through the pipeline and approved."""
    avatar = await _avatar()
    ref_id = await _request(env, avatar, kind="reference", key="ref")
    await env.work()
    reference = await Photo.get(id=ref_id)
    assert reference.status == PhotoStatus.READY
    await _approve(avatar, ref_id)
    return avatar, reference


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
    assert [(n.photo_id, n.kind, n.status) for n in env.notes.calls] == [
        (reference.id, "reference", "ready"),
        (photo_id, "photo", "ready"),
    ]
    assert env.notes.calls[1].avatar_id == avatar.id and env.notes.calls[1].user_id == avatar.user_id  # type: ignore[attr-defined]
    assert await _events(photo_id) == ["requested", "generating", "ready"]
    audit = await PhotoAudit.filter(photo_id=photo_id, event="ready").get()
    assert audit.user_ref == f"user:{avatar.user_id}"  # type: ignore[attr-defined]
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
    assert [n.status for n in env.notes.calls] == ["ready"]


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
    assert [(n.photo_id, n.status) for n in env.notes.calls] == [(photo_id, "failed")]
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
    assert [n.status for n in env.notes.calls] == ["failed", "ready"]
    assert (await _events(photo_id))[-3:] == ["replayed", "generating", "ready"]
    with pytest.raises(DeadLetterNotReplayable):
        await replay_dead_letter(env.redis, letter.id)


async def test_rate_limit_honours_retry_after(env: Env) -> None:
    """A 429's Retry-After beats a shorter backoff."""
    avatar = await _avatar()
    env.fake.rate_limit_next(retry_after=7)
    photo_id = await _request(env, avatar, kind="reference")
    with pytest.raises(RetryLater) as info:
        await env.pipeline().run(photo_id, attempt=1)
    assert info.value.defer == 7
    assert (await Photo.get(id=photo_id)).status == PhotoStatus.QUEUED


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
    assert [n.status for n in env.notes.calls] == ["blocked"]
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
    assert [n.status for n in env.notes.calls] == ["failed"]


async def test_safety_blocked_prompt_never_reaches_the_provider(env: Env) -> None:
    """A scene stating an age under 20 is blocked before generation, with the verdict audited."""
    avatar = await _avatar()
    photo_id = await _request(env, avatar, scene="she is 17 years old, at the beach")
    await env.work()
    photo = await Photo.get(id=photo_id)
    assert photo.status == PhotoStatus.BLOCKED
    assert env.fake.requests == []
    assert [n.status for n in env.notes.calls] == ["blocked"]
    assert await _events(photo_id) == ["requested", "blocked"]
    blocked = await PhotoAudit.filter(photo_id=photo_id, event="blocked").get()
    assert blocked.safety_allowed is False
    assert (blocked.safety_reason or "").startswith("age-under-20")
    assert "17 years old" in (blocked.prompt or "")


async def test_photo_without_approved_reference_fails_permanently(env: Env) -> None:
    """A kind-photo request for an avatar with no approved reference fails without calling the provider."""
    avatar = await _avatar()
    photo_id = await _request(env, avatar)
    await env.work()
    photo = await Photo.get(id=photo_id)
    assert photo.status == PhotoStatus.FAILED and "reference" in (photo.error or "")
    assert env.fake.requests == []
    assert [n.status for n in env.notes.calls] == ["failed"]


# -- crashes and lost jobs ------------------------------------------------------------------------------------


async def test_crash_after_store_reruns_to_one_photo_one_file_one_message(env: Env) -> None:
    """A worker dying after the photo was stored: the re-run only notifies, nothing is generated twice."""
    avatar = await _avatar()
    photo_id = await _request(env, avatar, kind="reference")
    env.notes.crash_next = 1
    pipeline = env.pipeline()
    with pytest.raises(Crash):
        await pipeline.run(photo_id, attempt=1)
    assert (await Photo.get(id=photo_id)).status == PhotoStatus.READY
    assert env.notes.delivered == []

    await pipeline.run(photo_id, attempt=2)
    await pipeline.run(photo_id, attempt=3)  # even a third delivery of the job changes nothing
    assert await Photo.all().count() == 1
    assert len(env.stored_files()) == 1
    assert env.creates(REFERENCE_MODEL) == 1
    assert [(n.photo_id, n.status) for n in env.notes.delivered] == [(photo_id, "ready")]
    assert await _events(photo_id) == ["requested", "generating", "ready"]


async def test_crash_mid_generation_is_swept_and_completed(env: Env) -> None:
    """A worker dying during generation leaves the photo `generating`; the sweeper re-enqueues it to completion."""
    avatar = await _avatar()
    photo_id = await _request(env, avatar, kind="reference")
    await env.redis.flushdb()  # the dying worker's job is gone with it
    with pytest.raises(Crash):
        await env.pipeline(provider=CrashOnce(env.provider)).run(photo_id, attempt=1)
    assert (await Photo.get(id=photo_id)).status == PhotoStatus.GENERATING

    assert await sweep_photos({"redis": env.redis, "photo_stuck_after": 0}) == 1
    await env.work()
    photo = await Photo.get(id=photo_id)
    assert (photo.status, photo.attempts) == (PhotoStatus.READY, 2)
    assert len(env.stored_files()) == 1
    assert [n.status for n in env.notes.delivered] == ["ready"]


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
    assert [n.status for n in env.notes.calls] == ["ready"]
    assert await sweep_photos({"redis": env.redis, "photo_stuck_after": 0}) == 0


async def test_failed_notification_is_retried_without_regenerating(env: Env) -> None:
    """When notify raises, the job retries and only notifies again: one provider call, one file."""
    avatar = await _avatar()
    env.notes.fail_next = 1
    photo_id = await _request(env, avatar, kind="reference")
    await env.work()
    assert (await Photo.get(id=photo_id)).status == PhotoStatus.READY
    assert env.creates(REFERENCE_MODEL) == 1
    assert len(env.stored_files()) == 1
    assert [n.status for n in env.notes.calls] == ["ready", "ready"]
    assert [n.status for n in env.notes.delivered] == ["ready"]


async def test_overlapping_runs_keep_one_file(env: Env) -> None:
    """Two runs of one photo at once (lost dedupe): one wins, the loser's file is deleted."""
    avatar = await _avatar()
    photo_id = await _request(env, avatar, kind="reference")
    pipeline = env.pipeline()
    await asyncio.gather(pipeline.run(photo_id, attempt=1), pipeline.run(photo_id, attempt=1))
    photo = await Photo.get(id=photo_id)
    assert photo.status == PhotoStatus.READY
    assert [p.relative_to(env.store.root).as_posix() for p in env.stored_files()] == [photo.storage_key]
    assert (await _events(photo_id)).count("ready") == 1
    assert [n.status for n in env.notes.delivered] == ["ready"]


async def test_erased_photo_job_is_a_no_op(env: Env) -> None:
    """A job for a photo deleted meanwhile (user erased) does nothing and notifies nobody."""
    avatar = await _avatar()
    photo_id = await _request(env, avatar, kind="reference")
    await Photo.filter(id=photo_id).delete()
    await env.work()
    assert env.fake.requests == [] and env.notes.calls == []
    assert await _events(photo_id) == ["requested"]  # the audit trail outlives the photo


def test_worker_registration() -> None:
    """`generate_photo` keeps no result (its job id is reused) and the sweeper cron runs at startup."""
    (function,) = photo_functions()
    assert (function.name, function.keep_result_s) == ("generate_photo", 0)
    (sweeper,) = photo_cron_jobs()
    assert sweeper.name == "sweep_photos" and sweeper.run_at_startup
