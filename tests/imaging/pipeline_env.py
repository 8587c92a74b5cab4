"""The photo pipeline's test environment: recorded hooks, the fake Replicate behind the real client, a store.

Shared by the pipeline and screening tests; the fixtures that build it are in `tests/imaging/conftest.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from arq.connections import ArqRedis
from arq.worker import Worker

from core.messages import ChatRef
from core.models import Avatar, Direction, Message, User
from core.ports import PhotoEvent
from imaging.certs import DevCertificates
from imaging.jobs import photo_functions
from imaging.models import Photo, PhotoStatus
from imaging.pipeline import PhotoPipeline
from imaging.provenance import ProvenanceSigner
from imaging.providers import GeneratedImage, ImageProvider, ImageRequest
from imaging.providers.replicate import ReplicateImageProvider
from imaging.service import PhotoService
from imaging.storage import LocalPhotoStore
from tests.fakes.replicate import FakeReplicate

TOKEN = "r8_fake_test_token"
REFERENCE_MODEL = "black-forest-labs/flux-1.1-pro"
EDIT_MODEL = "black-forest-labs/flux-kontext-pro"
WATERMARK = "AI-generated - Ava"
SCENE = "reading a book in a sunny cafe"
CHAT = ChatRef("telegram", "4242")


class Crash(BaseException):
    """Stands for the worker process dying: nothing in the pipeline catches it."""


@dataclass
class Hooks:
    """Records the pipeline's hooks. `on_finished` writes the user's notice as an outbound `Message` row, as the
    production turn runner does, so the committed rows show which notices survived their transaction."""

    finished: list[PhotoEvent] = field(default_factory=list)  # every call, rolled-back ones included
    kicks: list[int] = field(default_factory=list)  # user ids passed to after_finished
    shown: list[tuple[str, ChatRef]] = field(default_factory=list)  # ("enter" | "exit", chat) of `activity`
    fail_next: int = 0  # on_finished raises after writing its row
    crash_after_commit: int = 0  # after_finished dies like the worker process

    async def on_finished(self, event: PhotoEvent) -> None:
        """Write the notice row, then maybe fail (which must roll the whole transition back)."""
        self.finished.append(event)
        if event.ref is not None:
            await Message.create(
                user_id=event.user_id,
                direction=Direction.OUTBOUND,
                channel=event.ref.channel,
                chat_id=event.ref.chat_id,
                payload={"photo_id": event.photo_id, "status": event.status},
            )
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("notice store down")

    async def after_finished(self, user_id: int) -> None:
        """Record the delivery kick, then maybe die."""
        self.kicks.append(user_id)
        if self.crash_after_commit:
            self.crash_after_commit -= 1
            raise Crash

    @asynccontextmanager
    async def activity(self, ref: ChatRef) -> AsyncIterator[None]:
        """Record entering and leaving "uploading a photo"."""
        self.shown.append(("enter", ref))
        try:
            yield
        finally:
            self.shown.append(("exit", ref))


class CountingSigner(ProvenanceSigner):
    """The real signer, counting the photos it signed (post-processing's last step before the store)."""

    signed = 0

    def sign(self, manifest: Mapping[str, Any], jpeg: bytes) -> bytes:
        """Sign as the real signer does, and count."""
        self.signed += 1
        return super().sign(manifest, jpeg)


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
    hooks: Hooks
    service: PhotoService

    def pipeline(self, provider: ImageProvider | None = None, **overrides: object) -> PhotoPipeline:
        """A pipeline on this environment with tiny backoff, its hooks recorded by `hooks`."""
        options: dict[str, object] = {
            "provider": provider or self.provider,
            "store": self.store,
            "signer": self.signer,
            "http": self.http,
            "watermark_text": WATERMARK,
            "on_finished": self.hooks.on_finished,
            "after_finished": self.hooks.after_finished,
            "activity": self.hooks.activity,
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

    def downloads(self) -> int:
        """How many image downloads the fake served."""
        return sum(1 for r in self.fake.requests if r.path.startswith("/files/"))

    def stored_files(self) -> list[Path]:
        """Every file in the photo store."""
        return sorted(p for p in self.store.root.rglob("*") if p.is_file())


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


async def _ready_reference(env: Env, pipeline: PhotoPipeline | None = None) -> tuple[Avatar, Photo]:
    """An avatar whose reference portrait was generated through `pipeline` (default: the env's) and approved."""
    avatar = await _avatar()
    ref_id = await _request(env, avatar, kind="reference", key="ref")
    await env.work(pipeline)
    reference = await Photo.get(id=ref_id)
    assert reference.status == PhotoStatus.READY
    await _approve(avatar, ref_id)
    return avatar, reference


async def _request(
    env: Env,
    avatar: Avatar,
    kind: str = "photo",
    scene: str | None = SCENE,
    key: str = "k1",
    ref: ChatRef = CHAT,
) -> int:
    photo_id = await env.service.request_photo(
        user_id=avatar.user_id,  # type: ignore[attr-defined]
        avatar_id=avatar.id,
        kind=kind,  # type: ignore[arg-type]
        scene=scene if kind == "photo" else None,
        source_key=key,
        ref=ref,
    )
    await env.service.dispatch(photo_id)
    return photo_id
