"""Benchmark: webhook ingest throughput and latency of the real web process against a bare aiohttp handler.

Run with `uv run python -m bench.ingest`. Ava runs as `ava-bot serve` in a process of its own (development mode on
a fresh PostgreSQL database built by the real migrations, the real Redis), the baseline as `bench.bare` (an aiohttp
handler that reads the body and answers 200) in a process of its own too, both running at once; the load comes
from this process, one aiohttp client with `--concurrency` connections, the same for both. The measured requests
go in `--rounds` slices, each webhook slice right after a bare-handler slice, so that the load of a shared machine,
which drifts, hits the baseline and the subject alike. Each slice opens its connections before its clock starts
(one `GET /health` per connection, at once), as a platform's are open already (Telegram and Meta keep their webhook
connections alive): the figures are the requests', not those of 64 TCP handshakes at once. Each request is one
Telegram update (secret token header, a private text message: check + parse + idempotent store + drain scheduled +
200) from one of `--users` chats; then the same for WhatsApp (HMAC-SHA256 `X-Hub-Signature-256` over the body,
checked by pywa).

Both servers run on the same event loop (`--event-loop`, Ava's default unless given). Before the measured
requests each chat sends one message (warm-up: the user rows are created then), so the figures are those of users
who already exist, the common case; then the database is analyzed (`bench.common.analyze`). This process pauses
its garbage collector while a slice is measured (`quiet_collector`). No worker runs: every user's drain slot stays
taken after their first message, so later messages schedule nothing new (as when the worker is busy). Every
request must answer 200 and store exactly one row; the run fails otherwise.

Figures: requests/s, latency p50/p99 and the server process's CPU time per request for each (the last is what a
shared machine's load changes least). The last line is `ingest_ratio=<x.xx>` (Telegram requests/s
over the bare handler's); targets: ratio >= 0.35, Telegram p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import aiohttp

from ava_bot.runtime import EventLoopKind
from bench.common import (
    DEFAULT_LOOP,
    AvaProcess,
    ServerProcess,
    analyze,
    ava_env,
    bare_server,
    cpu_seconds,
    delete_ava_keys,
    free_port,
    percentile,
    run_benchmark,
    temporary_database,
)
from core.models import Direction, Message
from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.fakes.whatsapp import PHONE_ID, FakeGraph, sign

TELEGRAM_SECRET = "bench-telegram-secret"
WHATSAPP_SECRET = "bench-whatsapp-app-secret"
TARGET_RATIO = 0.35
TARGET_P99_MS = 50.0

Request = tuple[str, bytes, dict[str, str]]


@dataclass(frozen=True, slots=True)
class Run:
    """One measured load: wall time, each request's latency (ms), and the CPU time the server used meanwhile."""

    seconds: float
    latencies: list[float]
    cpu: float

    @property
    def rps(self) -> float:
        """Requests per second."""
        return len(self.latencies) / self.seconds

    def line(self, label: str) -> str:
        """One printed line of figures."""
        p50, p99 = statistics.median(self.latencies), percentile(self.latencies, 0.99)
        return (
            f"{label:<34} {self.rps:6.0f} req/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   "
            f"server CPU {self.cpu_ms:.2f} ms/request"
        )

    @property
    def cpu_ms(self) -> float:
        """Server CPU time per request (ms): what the machine's load does not change much."""
        return self.cpu * 1000 / len(self.latencies)


def telegram_update(n: int, chat: int) -> Request:
    """Update number `n`: a private text message from chat `chat`."""
    chat_id = 6_100_000_000 + chat
    body = {
        "update_id": 500_000_000 + n,
        "message": {
            "message_id": n + 1,
            "from": {"id": chat_id, "is_bot": False, "first_name": "Mara", "language_code": "de"},
            "chat": {"id": chat_id, "first_name": "Mara", "type": "private"},
            "date": 1763975012 + n,
            "text": f"Hi Ava, how was your day? ({n})",
        },
    }
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
    return "/webhooks/telegram", json.dumps(body).encode(), headers


def whatsapp_update(n: int, chat: int) -> Request:
    """Update number `n`: a text message from WhatsApp user `chat`, signed with the app secret."""
    wa_id = str(16_505_000_000 + chat)
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
        "contacts": [{"profile": {"name": "Sheena"}, "wa_id": wa_id, "user_id": f"US.{wa_id}"}],
        "messages": [
            {
                "from": wa_id,
                "id": f"wamid.bench{n:012d}",
                "timestamp": str(1749416383 + n),
                "type": "text",
                "text": {"body": f"Does it come in another color? ({n})"},
            }
        ],
    }
    raw = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "1022", "changes": [{"value": value, "field": "messages"}]}],
        }
    ).encode()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, WHATSAPP_SECRET)}
    return "/webhooks/whatsapp", raw, headers


def workload(
    make: Callable[[int, int], Request], users: int, requests: int, first: int = 0
) -> tuple[list[Request], list[Request]]:
    """(warm-up: one message per user, measured: `requests` messages round-robin over the users)."""
    warmup = [make(first + i, i) for i in range(users)]
    measured = [make(first + users + i, i % users) for i in range(requests)]
    return warmup, measured


async def load(server: ServerProcess, requests: list[Request], concurrency: int) -> Run:
    """Send `requests` to `server` over `concurrency` connections; every answer must be 200."""
    latencies: list[float] = []
    queue: Iterator[Request] = iter(requests)
    failures: list[str] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(server.url, connector=connector) as http:

        async def client() -> None:
            for path, body, headers in queue:  # a shared iterator: each request is sent once
                start = time.perf_counter()
                async with http.post(path, data=body, headers=headers) as response:
                    await response.read()
                latencies.append((time.perf_counter() - start) * 1000)
                if response.status != 200:
                    failures.append(f"{path}: {response.status}")

        # The connections are opened before the clock starts, as a platform's are (Telegram and Meta keep their
        # webhook connections open): the figures are those of the requests, not of `concurrency` TCP handshakes at
        # once (which, at the start of every round, were most of the p99).
        await asyncio.gather(*(_open_connection(http) for _ in range(concurrency)))
        with quiet_collector():
            started, cpu = time.perf_counter(), cpu_seconds(server.pid)
            await asyncio.gather(*(client() for _ in range(concurrency)))
            seconds, cpu = time.perf_counter() - started, cpu_seconds(server.pid) - cpu
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[:3]}")
    return Run(seconds, latencies, cpu)


@contextlib.contextmanager
def quiet_collector() -> Iterator[None]:
    """This process's (the load generator's) garbage collector collected before a measured load and paused during
    it: a full collection here took 60-120 ms (the workload's prepared requests are many objects), and every
    request in flight then was timed that much longer, the servers' p99 figures the client's pauses."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def _open_connection(http: aiohttp.ClientSession) -> None:
    """One `GET /health` (answered without a database): run `concurrency` of them at once to open the pool."""
    async with http.get("/health") as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"/health answered {response.status}")


@contextlib.asynccontextmanager
async def serving(process: ServerProcess) -> AsyncIterator[ServerProcess]:
    """A started server process, healthy, stopped on exit."""
    try:
        await process.wait_healthy()
        yield process
    finally:
        process.stop()


def combined(runs: list[Run]) -> Run:
    """Several measured rounds as one: total time, every latency."""
    return Run(sum(r.seconds for r in runs), [ms for r in runs for ms in r.latencies], sum(r.cpu for r in runs))


def rounds_of(requests: list[Request], rounds: int) -> list[list[Request]]:
    """`requests` cut into `rounds` consecutive slices."""
    size = -(-len(requests) // rounds)
    return [requests[i : i + size] for i in range(0, len(requests), size)]


async def run(
    users: int, requests: int, concurrency: int, whatsapp: bool, rounds: int, loop: EventLoopKind
) -> dict[str, Run]:
    """Both servers up at once, both on the `loop` event loop; the measured requests in `rounds` slices, each
    webhook's slice right after a slice of the bare handler, so drifting load on a shared machine hits baseline
    and subject alike."""
    measured: dict[str, list[Run]] = {"bare": [], "telegram": [], "whatsapp": []}
    tg_warm, tg_measured = workload(telegram_update, users, requests)
    wa_warm, wa_measured = workload(whatsapp_update, users, requests, first=users + requests)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        async with FakeTelegram() as telegram, FakeGraph() as graph, temporary_database() as db_url:
            env = ava_env(
                workdir,
                db_url,
                telegram_bot_token=TOKEN,
                telegram_webhook_secret=TELEGRAM_SECRET,
                telegram_api_base_url=telegram.url,
                whatsapp_enabled="true",
                whatsapp_phone_id=PHONE_ID,
                whatsapp_token="bench-graph-token",
                whatsapp_app_secret=WHATSAPP_SECRET,
                whatsapp_verify_token="bench-verify",
                whatsapp_api_base_url=graph.url,
                event_loop=loop,
            )
            try:
                async with (
                    serving(bare_server(workdir, loop)) as bare,
                    serving(AvaProcess("serve", env, workdir, port=free_port())) as web,
                ):
                    await load(bare, tg_warm, concurrency)
                    await load(web, tg_warm, concurrency)
                    if whatsapp:
                        await load(web, wa_warm, concurrency)
                    await analyze(db_url)  # as autovacuum would have by now (`bench.common.analyze`)
                    subjects = [("telegram", rounds_of(tg_measured, rounds))]
                    if whatsapp:
                        subjects.append(("whatsapp", rounds_of(wa_measured, rounds)))
                    for index in range(rounds):
                        for name, slices in subjects:
                            measured["bare"].append(await load(bare, slices[index], concurrency))
                            measured[name].append(await load(web, slices[index], concurrency))
                stored = await Message.filter(direction=Direction.INBOUND).count()
                expected = (users + requests) * (2 if whatsapp else 1)
                if stored != expected:
                    raise RuntimeError(f"{stored} inbound rows stored, expected {expected}")
            finally:
                await delete_ava_keys()
    return {name: combined(runs) for name, runs in measured.items() if runs}


def main() -> None:
    """Print the figures; the last line is `ingest_ratio=<x.xx>`."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000, help="measured requests per webhook")
    parser.add_argument("--users", type=int, default=1000, help="distinct chats (one warm-up message each)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5, help="baseline and webhook slices, alternated")
    parser.add_argument("--no-whatsapp", action="store_true", help="skip the WhatsApp webhook")
    parser.add_argument(
        "--event-loop", choices=get_args(EventLoopKind), default=DEFAULT_LOOP, help="of both servers, as EVENT_LOOP"
    )
    args = parser.parse_args()
    runs = run_benchmark(
        run(args.users, args.requests, args.concurrency, not args.no_whatsapp, args.rounds, args.event_loop)
    )
    ratio = runs["telegram"].rps / runs["bare"].rps
    print(
        f"{args.requests} requests per webhook after {args.users} warm-up, in {args.rounds} rounds alternating with "
        f"the bare handler; {args.concurrency} connections, one aiohttp client; both servers on {args.event_loop}"
    )
    print(runs["bare"].line("bare aiohttp handler (baseline)"))
    print(runs["telegram"].line("POST /webhooks/telegram"))
    if "whatsapp" in runs:
        print(runs["whatsapp"].line("POST /webhooks/whatsapp (signed)"))
        print(f"whatsapp / bare: {runs['whatsapp'].rps / runs['bare'].rps:.2f}")
    if runs["telegram"].cpu > 0:  # /proc counts clock ticks (10 ms): a short run may not reach one
        cpu_ratio = runs["bare"].cpu_ms / runs["telegram"].cpu_ms
        print(
            f"server CPU per request, bare / telegram: {cpu_ratio:.2f} (the ratio if the web process had a core to "
            "itself)"
        )
    else:
        print("server CPU per request: too few requests to measure (less than one clock tick)")
    p99 = percentile(runs["telegram"].latencies, 0.99)
    print(
        f"targets: ratio >= {TARGET_RATIO:.2f} (got {ratio:.2f}); telegram p99 < {TARGET_P99_MS:.0f} ms (got {p99:.1f})"
    )
    print(f"ingest_ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
