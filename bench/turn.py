"""Benchmark: chat turns through the worker with a zero-latency fake LLM — throughput and the engine's overhead.

Run with `uv run python -m bench.turn`. The LLM is `tests.fakes.openai.FakeOpenAI` (answers at once, echoing the
user) reached by the real OpenAI client; the users are subscribed, set up, on the web channel (a reply is
delivered by a Redis publish), in secretary mode. Database: a fresh PostgreSQL database built by the real
migrations, analyzed before each measured step (`bench.common.analyze`); Redis: AVA_TEST_REDIS_URL.

1. Overhead, in this process: `--overhead-turns` messages, one at a time; each is stored, then its user's drain
   runs (the worker's job body: pending deliveries, the turn — read, history, prompt, LLM, one commit — and the
   reply's delivery). Overhead = that drain's time minus the time spent inside the LLM call (the client library,
   HTTP and the fake), so it is our own work per turn.
2. Throughput, in a real `ava-bot worker` process (production worker settings: 50 jobs at once, the default of
   `WORKER_MAX_JOBS`; woken on enqueue): `--users` new users answered once each (the warm-up: the worker's pools
   grown, as in a running service), then with `--turns-per-user` pending messages each scheduled at once; turns/s
   from scheduling to the last message done, and the worker's CPU time per turn (what its core would allow with no
   other load). Every message must end `done` with one reply, in order. `--rounds` runs on each event loop
   (`EVENT_LOOP`), alternated; the default loop's median is the figure, Python's own loop the comparison of the
   same run.

3. The floor, in a process of its own (`bench.floor`): the CPU of one turn's round trips alone with our libraries —
   its statements through the ORM, its Redis publishes, its LLM call through the openai SDK (the messages of a
   real turn of step 2) — and the turns/s that would allow with no logic and no queue at all: the ceiling that
   the worker's CPU per turn is measured against, in the same run.

The last line is `turn_overhead_p50_ms=<n>`; targets: p50 <= 5 ms, >= 300 turns/s per worker process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

from arq.connections import ArqRedis, RedisSettings, create_pool

from ava_bot.queueing import DrainQueue
from ava_bot.runtime import EventLoopKind
from ava_bot.settings import Settings
from ava_bot.wiring import build_llm, open_services
from bench.common import (
    DEFAULT_LOOP,
    REDIS_URL,
    AvaProcess,
    analyze,
    ava_env,
    ava_settings,
    cpu_seconds,
    delete_ava_keys,
    percentile,
    run_benchmark,
    temporary_database,
)
from bench.floor import PUBLISHES, STATEMENTS
from core.inbox import store_inbound
from core.llm import OpenAICompatibleLLM
from core.messages import ChatRef, InboundMessage
from core.models import Direction, Message, MessageStatus, User
from core.ports import ChatMessage, LLMProvider, LLMResult, ToolSpec
from tests.fakes.entitlements import subscribe
from tests.fakes.openai import FakeOpenAI
from tests.support import ready_user

TARGET_OVERHEAD_MS = 5.0
TARGET_TURNS_PER_S = 300.0
#: The worker's throughput is measured on each event loop the `EVENT_LOOP` setting offers, alternated; the
#: production default (`DEFAULT_LOOP`) is the figure, Python's own loop the before/after baseline of the same run.
LOOPS: tuple[EventLoopKind, ...] = get_args(EventLoopKind)
LLM_KEY = "bench-llm-key"


class TimedLLM:
    """An `LLMProvider` that times the provider it wraps (the real OpenAI-compatible client)."""

    def __init__(self, inner: LLMProvider) -> None:
        self._inner = inner
        self.name = inner.name
        self.seconds = 0.0

    async def complete(self, messages: Sequence[ChatMessage], *, tools: Sequence[ToolSpec] = ()) -> LLMResult:
        """The inner answer; its time is added to `seconds`."""
        start = time.perf_counter()
        try:
            return await self._inner.complete(messages, tools=tools)
        finally:
            self.seconds += time.perf_counter() - start


async def bench_users(count: int, prefix: str) -> list[User]:
    """`count` users who may chat: set up (approved avatar), subscribed with a quota that never runs out."""
    users = []
    for i in range(count):
        user = await ready_user(f"{prefix}{i}")
        await subscribe(user.id, messages=10_000_000, photos=10_000_000)
        users.append(user)
    return users


def message(chat: str, n: int) -> InboundMessage:
    """The `n`th web message of `chat`."""
    return InboundMessage(ref=ChatRef("web", chat), message_id=f"{chat}:{n}", text=f"How is your day going? ({n})")


async def measure_overhead(settings: Settings, redis: ArqRedis, turns: int, warmup: int) -> list[float]:
    """Per-turn overhead (ms) of `turns` turns run one at a time in this process, after `warmup` turns."""
    inner = build_llm(settings)
    llm = TimedLLM(inner)
    users = await bench_users(10, "o")
    overhead: list[float] = []
    try:
        async with open_services(settings, redis, llm=llm) as services:
            for n in range(warmup + turns):
                if n == warmup:
                    await analyze(settings.effective_database_url)  # as autovacuum would (`bench.common.analyze`)
                user = users[n % len(users)]
                await store_inbound(message(f"o{n % len(users)}", n), user)
                llm.seconds = 0.0
                start = time.perf_counter()
                await services.runner.drain(user.id, whole=True)
                elapsed = time.perf_counter() - start
                if n >= warmup:
                    overhead.append((elapsed - llm.seconds) * 1000)
    finally:
        if isinstance(inner, OpenAICompatibleLLM):  # its HTTP client is ours to close (we built it)
            await inner.aclose()
    done = await Message.filter(direction=Direction.INBOUND, status=MessageStatus.DONE, chat_id__startswith="o").count()
    assert done == warmup + turns, f"{done} of {warmup + turns} turns done"
    return overhead


async def measure_throughput(
    db_url: str, llm_url: str, workdir: Path, users: int, per_user: int, *, loop: EventLoopKind, prefix: str
) -> tuple[float, float]:
    """(turns/s, worker CPU ms per turn) of one `ava-bot worker` process on the `loop` event loop working through
    `users` x `per_user` pending messages of new users (their chats start with `prefix`). The worker first answers
    one message of each user, unmeasured: a running service's worker has its connection pools grown and its code
    paths warm; a new process opens a PostgreSQL connection for each of its first concurrent jobs."""
    people = await bench_users(users, prefix)
    env = ava_env(workdir, db_url, llm_base_url=llm_url, llm_api_key=LLM_KEY, event_loop=loop)
    worker = AvaProcess("worker", env, workdir)
    redis = await create_pool(RedisSettings.from_dsn(REDIS_URL))
    try:
        queue = DrainQueue(redis)
        for i, user in enumerate(people):
            await store_inbound(message(f"{prefix}{i}", 0), user)
        await work_through(queue, worker, people, prefix)  # the warm-up
        for n in range(1, per_user + 1):
            for i, user in enumerate(people):
                await store_inbound(message(f"{prefix}{i}", n), user)
        await analyze(db_url)  # as autovacuum would have by now (`bench.common.analyze`)
        start, cpu = time.perf_counter(), cpu_seconds(worker.pid)
        await work_through(queue, worker, people, prefix)
        seconds, cpu = time.perf_counter() - start, cpu_seconds(worker.pid) - cpu
    finally:
        worker.stop()
        await redis.aclose()
    await check_order(people)
    total = users * per_user
    return total / seconds, cpu * 1000 / total


async def work_through(queue: DrainQueue, worker: AvaProcess, people: list[User], prefix: str) -> None:
    """Schedule every user's drain, then wait until every message of theirs is done."""
    start = time.perf_counter()
    for user in people:
        await queue.schedule(user.id)
    pending = Message.filter(direction=Direction.INBOUND, chat_id__startswith=prefix).exclude(status=MessageStatus.DONE)
    while left := await pending.count():
        worker.check_alive()
        if time.perf_counter() - start > 60 + left / 10:
            raise TimeoutError(f"{left} turns not done:\n{worker.log_tail()}")
        await asyncio.sleep(0.05)


async def measure_floor(db_url: str, llm: FakeOpenAI, workdir: Path, rounds: int) -> dict[str, float]:
    """`bench.floor`'s mean CPU ms per part of one turn's I/O, in a process of its own (this process serves the fake
    LLM), with the messages of the last turn the worker sent."""
    messages = workdir / "messages.json"
    messages.write_text(json.dumps(llm.completions()[-1]["messages"]))
    argv = ["--database-url", db_url, "--llm-url", llm.base_url, "--llm-api-key", LLM_KEY]
    floor = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.floor",
        *argv,
        "--messages",
        str(messages),
        "--rounds",
        str(rounds),
        "--event-loop",
        DEFAULT_LOOP,
        env=ava_env(workdir, db_url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await floor.communicate()
    if floor.returncode != 0:
        raise RuntimeError(f"bench.floor failed:\n{err.decode()[-3000:]}")
    parts: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    return parts


async def check_order(users: list[User]) -> None:
    """Each user's messages were processed in arrival order, each answered by one reply."""
    for user in users:
        inbound = await Message.filter(user_id=user.id, direction=Direction.INBOUND).order_by("id")
        processed = [row.processed_at or datetime.max.replace(tzinfo=UTC) for row in inbound]
        assert processed == sorted(processed), f"user {user.id}: turns out of order"
        replies = await Message.filter(user_id=user.id, direction=Direction.OUTBOUND).count()
        assert replies == len(inbound), f"user {user.id}: {replies} replies to {len(inbound)} messages"


async def run(args: argparse.Namespace) -> tuple[list[float], dict[str, list[tuple[float, float]]], dict[str, float]]:
    """(overhead samples in ms, per event loop the (turns/s, CPU ms per turn) of each throughput run of one worker
    process, the floor's CPU ms by part)."""
    throughput: dict[str, list[tuple[float, float]]] = {loop: [] for loop in LOOPS}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        llm = FakeOpenAI()
        async with llm, temporary_database() as db_url:
            settings = ava_settings(workdir, db_url, llm_base_url=llm.base_url, llm_api_key=LLM_KEY)
            redis = await create_pool(RedisSettings.from_dsn(REDIS_URL))
            try:
                overhead = await measure_overhead(settings, redis, args.overhead_turns, args.warmup)
                for n in range(args.rounds):  # alternated, so drifting load on a shared machine hits both loops
                    for loop in LOOPS:
                        throughput[loop].append(
                            await measure_throughput(
                                db_url,
                                llm.base_url,
                                workdir,
                                args.users,
                                args.turns_per_user,
                                loop=loop,
                                prefix=f"t{n}{loop[0]}-",
                            )
                        )
                floor = await measure_floor(db_url, llm, workdir, args.floor_rounds)
            finally:
                await redis.aclose()
                await delete_ava_keys()
    return overhead, throughput, floor


def main() -> None:
    """Print the figures; the last line is `turn_overhead_p50_ms=<n>`."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--overhead-turns", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--users", type=int, default=200, help="users of the throughput run")
    parser.add_argument("--turns-per-user", type=int, default=5)
    parser.add_argument(
        "--rounds", type=int, default=3, help="throughput runs per event loop (the median is the figure)"
    )
    parser.add_argument("--floor-rounds", type=int, default=500, help="rounds of the I/O floor's measurement")
    args = parser.parse_args()
    overhead, throughput, floor = run_benchmark(run(args))
    rate = statistics.median(r for r, _ in throughput[DEFAULT_LOOP])
    cpu_ms = statistics.median(c for _, c in throughput[DEFAULT_LOOP])
    floor_ms = sum(floor.values())
    p50, p99 = statistics.median(overhead), percentile(overhead, 0.99)
    print(f"overhead: {args.overhead_turns} turns one at a time (+{args.warmup} warm-up), zero-latency fake LLM")
    print(f"engine overhead per turn (drain time - LLM call): p50 {p50:.2f} ms  p99 {p99:.2f} ms")
    print(
        f"throughput: {args.users} users x {args.turns_per_user} turns, one `ava-bot worker` process, "
        f"{args.rounds} runs per event loop, alternated"
    )
    for loop in LOOPS:
        runs = ", ".join(f"{r:.0f} ({c:.1f} ms CPU)" for r, c in throughput[loop])
        print(f"  EVENT_LOOP={loop}: turns/s (worker CPU per turn) {runs}")
    print(
        f"turns per second per worker process ({DEFAULT_LOOP}, the default; median): {rate:.0f}  "
        f"(worker CPU {cpu_ms:.1f} ms per turn)"
    )
    print(
        f"I/O floor, own process ({DEFAULT_LOOP}): {STATEMENTS} statements {floor['statements']:.2f} ms + {PUBLISHES} "
        f"Redis publishes {floor['publishes']:.2f} ms + the LLM call through the SDK {floor['llm']:.2f} ms = "
        f"{floor_ms:.2f} ms CPU per turn: at most {1000 / floor_ms:.0f} turns/s per process with no logic and no queue"
    )
    print(f"worker CPU per turn / I/O floor: {cpu_ms / floor_ms:.2f}")
    print(
        f"targets: p50 <= {TARGET_OVERHEAD_MS:.0f} ms (got {p50:.2f}); "
        f">= {TARGET_TURNS_PER_S:.0f} turns/s (got {rate:.0f})"
    )
    print(f"turn_overhead_p50_ms={p50:.2f}")


if __name__ == "__main__":
    main()
