"""Benchmark: photo-job latency, enqueue to delivered, with a provider that adds no latency.

Run with `uv run python -m bench.photo_job`. Everything but the image model is production: a fresh PostgreSQL
database built by the real migrations, Redis, the services and the photo pipeline as a worker process wires them
(`ava_bot.wiring.open_services`, `open_photo_pipeline`: the photo quota charged when the job starts, prompt,
safety screening, reference read, watermark, C2PA signing, atomic file store, audit rows, the user's notice written
by the turn runner with the READY transition) and an arq worker running the production jobs
(`ava_bot.worker.job_functions`) with the production `poll_delay`, wake-ups (`ava_bot.wakeup`: the client that
enqueues publishes one, the worker polls at once), jobs at once (`WORKER_MAX_JOBS`) and Redis-outage guard. The
provider returns a fixed ~1 MP JPEG at once, so the figure is our own overhead on top of the model's time.

The user is a subscribed web user with an approved reference (made by the pipeline first). "Delivered" is what
the user's browser sees: once the READY transition committed, the user's drain (run by the photo job itself when
the user's slot is free) sends every row of the notice, and the web channel pokes the chat's Redis channel for
each; the photo counts as delivered at the poke of its last notice row, heard by a subscriber in this process as an
open chat page hears it.

Each photo is a kind-"photo" job conditioned on the reference (the common case in chat). Jobs run one at a time,
interleaved with a no-op arq job whose enqueue-to-run round trip is the same-run baseline of the queue, and with
the post-processing alone (watermark + C2PA signing of the same image, `bench.postprocess.postprocess`, in this
process: the same image work the pipeline does in its worker thread). Each of them starts with the worker idle: the
photo job's tail after its poke (the slot released, arq's bookkeeping) and the no-op job's are waited out first,
else they would run inside the next step's time. Printed: `photo_job_p50_ms=<n>` (target <=
150 ms) and, last, `photo_job_overhead_ratio=<x.xx>`: the photo job's p50 over the post-processing's p50, i.e.
what queueing, the database and the delivery add to the unavoidable image work (target <= 1.25).

Also printed, measured in the same iterations: the floor of what the job's guarantees cost on this machine with
nothing else done — the job's trip through the queue (the no-op job's round trip), three one-row commits (the quota
unit charged, GENERATING committed before the provider is called, READY with the notice committed before the user
is told), the photo's file stored as the pipeline stores it (atomic, fsync'd) and one poke published — added to the
post-processing: the lowest ratio those steps allow, and how far above that floor the photo job is. (The photo job
sends its notice itself when no drain holds the user's slot, `TurnRunner.drain_here`, so a second trip through the
queue is not part of it; the notice's one row is marked sent after its poke, so that commit is not part of it
either.)

Databases: AVA_TEST_DATABASE_URL (admin URL; a temporary database is created and dropped) and
AVA_TEST_REDIS_URL (a private queue name is used; nothing is flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker, func
from redis.asyncio import Redis
from tortoise import connections

from ava_bot.settings import Settings
from ava_bot.wakeup import WakingArqRedis, wake_on_enqueue
from ava_bot.wiring import build_signer, build_store, open_photo_pipeline, open_services
from ava_bot.worker import POLL_DELAY, job_functions, ride_out_redis_outages
from bench.common import REDIS_URL, analyze, ava_settings, percentile, run_benchmark, temporary_database
from bench.postprocess import make_photo, postprocess
from channels.web_events import events_channel, redis_db
from core.messages import ChatRef
from core.models import Avatar, Direction, Message, MessageStatus
from imaging.models import Photo, PhotoStatus
from imaging.providers import GeneratedImage, ImageRequest
from imaging.service import PhotoService
from imaging.storage import PhotoStore
from tests.fakes.entitlements import subscribe
from tests.support import ready_user

TARGET_P50_MS = 150
TARGET_RATIO = 1.25
CHAT = ChatRef("web", "bench")
#: The provider's photo (~1 MP, as FLUX's default output).
SIZE = (832, 1248)
#: The web channel's poke of a stored row (anything but an activity's JSON, `channels.web_events`).
ROW_POKE = b"1"
#: Where the floor publishes its poke: a channel no page listens to.
FLOOR_CHANNEL = "ava:bench:floor"


class InstantProvider:
    """An `ImageProvider` returning one fixed JPEG immediately: no latency of its own."""

    name = "instant"

    def __init__(self, jpeg: bytes) -> None:
        self._jpeg = jpeg

    async def generate(self, request: ImageRequest) -> GeneratedImage:
        """The fixed JPEG, as bytes (nothing to download)."""
        return GeneratedImage(
            data=self._jpeg,
            url=None,
            content_type="image/jpeg",
            provider=self.name,
            model="instant-v1",
            seed=1,
            job_id=uuid.uuid4().hex,
        )


@dataclass
class Samples:
    """Milliseconds per measured job."""

    photo: list[float] = field(default_factory=list)  # enqueue -> delivered
    noop: list[float] = field(default_factory=list)  # a no-op job's enqueue -> run
    post: list[float] = field(default_factory=list)  # post-processing alone
    durable: list[float] = field(default_factory=list)  # the floor's commits, file and poke


class Pokes:
    """The pokes of the bench chat's Redis channel, with the time each was heard, as an open chat page hears them."""

    def __init__(self, redis: Redis, channel: str) -> None:
        self._pubsub = redis.pubsub()
        self._channel = channel
        self._heard: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Pokes:
        await self._pubsub.subscribe(self._channel)
        self._task = asyncio.create_task(self._listen())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._pubsub.aclose()

    async def _listen(self) -> None:
        async for message in self._pubsub.listen():
            if message["type"] == "message":
                self._heard.put_nowait((time.perf_counter(), message["data"]))

    def forget(self) -> None:
        """Drop what was heard so far."""
        while not self._heard.empty():
            self._heard.get_nowait()

    async def delivered(self, photo_id: int, within: float = 30.0) -> float:
        """When the last row of the photo's notice was poked: the photo's notice rows are all sent and as many row
        pokes were heard (since `forget`)."""
        rows = Message.filter(direction=Direction.OUTBOUND, external_message_id__startswith=f"photo:{photo_id}:")
        times: list[float] = []
        deadline = time.perf_counter() + within
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError(f"photo {photo_id} not delivered within {within} s")
            with contextlib.suppress(TimeoutError):
                heard_at, data = await asyncio.wait_for(self._heard.get(), min(remaining, 0.05))
                if data == ROW_POKE:
                    times.append(heard_at)
            statuses = await rows.values_list("status", flat=True)
            if statuses and all(s == MessageStatus.SENT for s in statuses) and len(times) >= len(statuses):
                return times[len(statuses) - 1]


async def noop(ctx: dict[str, Any], key: str) -> None:
    """The baseline job: records when it ran."""
    ctx["ran"][key] = time.perf_counter()
    ctx["ran_event"].set()


async def settled(worker: Worker) -> None:
    """Return when none of `worker`'s jobs is running any more (its bookkeeping after the job's body included), so
    each measured step starts with the worker idle, as the one before it did."""
    while pending := [task for task in worker.tasks.values() if not task.done()]:
        await asyncio.wait(pending)


async def durable_steps(store: PhotoStore, photo: bytes, row_id: int, redis: Redis, channel: str) -> float:
    """Milliseconds of the durable steps a delivered photo cannot do without, and nothing else: three one-row
    commits (the quota unit, GENERATING, READY with the notice), `photo` stored as the pipeline stores it
    (then removed) and one poke published."""
    db = connections.get(Photo._meta.default_connection)
    start = time.perf_counter()
    for _ in range(3):
        await db.execute_query('UPDATE "photos" SET "updated_at" = now() WHERE "id" = $1', [row_id])
    key = await store.put(photo, suffix=".jpg")
    await redis.publish(channel, "1")
    elapsed = (time.perf_counter() - start) * 1000
    await store.delete(key)
    return elapsed


@contextlib.asynccontextmanager
async def production_worker(settings: Settings, jpeg: bytes) -> AsyncIterator[tuple[ArqRedis, dict[str, Any], Worker]]:
    """The services, the photo pipeline (instant provider) and a running arq worker with the production jobs, on a
    private queue: yields (redis, the worker's ctx, the worker)."""
    queue = f"arq:bench:{uuid.uuid4().hex[:8]}"  # private: never competes with other workers on this Redis
    plain = await create_pool(RedisSettings.from_dsn(REDIS_URL), default_queue_name=queue)
    redis: ArqRedis = WakingArqRedis.sharing(plain)  # as `ava_bot.redis.create_redis` gives every process
    provider = InstantProvider(jpeg)
    async with (
        open_services(settings, redis) as services,
        open_photo_pipeline(settings, services, provider=provider) as pipeline,
    ):
        ctx: dict[str, Any] = {
            "settings": settings,
            "services": services,
            "photo_pipeline": pipeline,
            "ran": {},
            "ran_event": asyncio.Event(),
        }
        worker = Worker(
            functions=[*job_functions(settings), func(noop, name="bench_noop", keep_result=0)],
            redis_pool=redis,
            queue_name=queue,  # Worker does not take it from the pool: its default is "arq:queue"
            poll_delay=POLL_DELAY,
            max_jobs=settings.worker_max_jobs,
            handle_signals=False,
            ctx=ctx,
        )
        worker = wake_on_enqueue(ride_out_redis_outages(worker))  # as `ava_bot.worker.create_worker` does
        task = asyncio.create_task(worker.async_run())
        try:
            yield redis, ctx, worker
        finally:
            await worker.close()  # also closes `redis`
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def run(jobs: int, warmup: int) -> Samples:
    """Milliseconds of `jobs` photo jobs, as many no-op jobs, post-processings alone and floors, after `warmup`."""
    with tempfile.TemporaryDirectory() as tmp:
        async with temporary_database() as db_url:
            settings = ava_settings(Path(tmp), db_url)
            jpeg = make_photo(*SIZE)
            async with production_worker(settings, jpeg) as (redis, ctx, worker):
                listener = Redis.from_url(REDIS_URL)
                try:
                    async with Pokes(listener, events_channel(CHAT.chat_id, redis_db(listener))) as pokes:
                        return await _measure(settings, redis, listener, pokes, ctx, worker, jpeg, jobs, warmup)
                finally:
                    await listener.aclose()


async def _measure(
    settings: Settings,
    redis: ArqRedis,
    listener: Redis,
    pokes: Pokes,
    ctx: dict[str, Any],
    worker: Worker,
    jpeg: bytes,
    jobs: int,
    warmup: int,
) -> Samples:
    """The measured loop; `jpeg` is what the provider returns (its post-processing alone is the baseline)."""
    service = PhotoService(redis)
    user = await ready_user(CHAT.chat_id, channel=CHAT.channel)
    await subscribe(user.id, photos=10_000_000, messages=10_000_000)
    avatar = await Avatar.get(user_id=user.id)
    reference_id = await service.request_photo(
        user_id=user.id, avatar_id=avatar.id, kind="reference", scene=None, source_key="bench:ref", ref=CHAT
    )
    await service.dispatch(reference_id)
    deadline = time.perf_counter() + 30
    while (await Photo.get(id=reference_id)).status != PhotoStatus.READY:  # a set-up user is told nothing of it
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the reference photo is not ready: {await Photo.get(id=reference_id)}")
        await asyncio.sleep(0.01)
    avatar.reference_photo_id, avatar.approved_at = reference_id, datetime.now(UTC)
    await avatar.save()
    signer = build_signer(settings)  # the worker's signing credentials and store, as its pipeline has them
    store = build_store(settings)
    signed = postprocess(jpeg, signer)  # what the floor stores: a signed photo's bytes

    samples = Samples()
    for i in range(warmup + jobs):
        if i == warmup:
            await analyze(settings.effective_database_url)  # as autovacuum would have by now
        photo_id = await service.request_photo(
            user_id=user.id,
            avatar_id=avatar.id,
            kind="photo",
            scene="reading in a sunny cafe",
            source_key=f"b:{i}",
            ref=CHAT,
        )
        pokes.forget()
        start = time.perf_counter()
        await service.dispatch(photo_id)
        delivered_at = await pokes.delivered(photo_id)
        await settled(worker)  # the job's tail after the poke (slot released, arq's bookkeeping) is not the next step's

        key = f"noop:{i}"
        ctx["ran_event"].clear()
        noop_start = time.perf_counter()
        await redis.enqueue_job("bench_noop", key)
        while key not in ctx["ran"]:
            await asyncio.wait_for(ctx["ran_event"].wait(), 30)
            ctx["ran_event"].clear()
        await settled(worker)

        post_start = time.perf_counter()  # the image work alone: watermark + C2PA signing of the same JPEG
        postprocess(jpeg, signer)
        post_elapsed = (time.perf_counter() - post_start) * 1000

        durable_elapsed = await durable_steps(store, signed, reference_id, listener, FLOOR_CHANNEL)
        if i >= warmup:
            samples.photo.append((delivered_at - start) * 1000)
            samples.noop.append((ctx["ran"][key] - noop_start) * 1000)
            samples.post.append(post_elapsed)
            samples.durable.append(durable_elapsed)
    ready = await Photo.filter(status="ready").count()
    assert ready == warmup + jobs + 1, f"{ready} of {warmup + jobs + 1} photos ready"
    return samples


def main() -> None:
    """Print p50/p95 of photo jobs, of the baselines and of the floor; the last line is
    `photo_job_overhead_ratio=<x.xx>`."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    # Every job logs a line or two (photo ready, notice sent): the figures would drown in them.
    logging.getLogger().setLevel(logging.WARNING)
    samples = run_benchmark(run(args.jobs, args.warmup))
    p50, p95 = statistics.median(samples.photo), percentile(samples.photo, 0.95)
    b50, b95 = statistics.median(samples.noop), percentile(samples.noop, 0.95)
    w50, w95 = statistics.median(samples.post), percentile(samples.post, 0.95)
    d50 = statistics.median(samples.durable)
    steps = zip(samples.noop, samples.durable, samples.post, strict=True)
    floor = [noop + durable + post for noop, durable, post in steps]
    f50 = statistics.median(floor)
    ratio = p50 / w50
    poll = f"worker poll_delay {POLL_DELAY * 1000:.0f} ms + wake-ups"
    size = "x".join(map(str, SIZE))
    print(f"{args.jobs} jobs + {args.warmup} warm-up, {poll}, {size} JPEG, production services and pipeline")
    print(f"no-op arq job round trip (baseline): p50 {b50:.1f} ms  p95 {b95:.1f} ms")
    print(f"post-processing alone (baseline):    p50 {w50:.1f} ms  p95 {w95:.1f} ms")
    print(
        f"photo job, enqueue -> delivered:     p50 {p50:.1f} ms  p95 {p95:.1f} ms  (target p50 <= {TARGET_P50_MS} ms)"
    )
    print(f"photo job / post-processing alone:   {ratio:.2f}  (target <= {TARGET_RATIO})")
    print(
        f"floor: a no-op job + 3 one-row commits, the photo's stored file and a poke ({d50:.1f} ms) + "
        f"post-processing: p50 {f50:.1f} ms, the lowest ratio these steps allow {f50 / w50:.2f}; "
        f"photo job / floor {p50 / f50:.2f}"
    )
    print(f"photo_job_p50_ms={p50:.1f}")
    print(f"photo_job_overhead_ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
