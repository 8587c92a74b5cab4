"""Benchmark: peak memory of the web and worker processes after many turns and photos, and its growth.

Run with `uv run python -m bench.memory` (defaults: 10,000 turns, 500 photos; about 10 minutes here). Ava runs as
two processes, `ava-bot serve` and `ava-bot worker`, on a fresh PostgreSQL database built by the real migrations
and the real Redis. `--users` Telegram users (set up, subscribed, intimate mode) write through the signed-secret
webhook; the worker answers each through a fake OpenAI-compatible LLM (`answer` below: an echo, or a `send_photo`
tool call for every message asking for a photo), makes the photos with the offline placeholder provider (a ~1 MP
image, then the real watermark, C2PA signing and storage) and delivers everything through the real
python-telegram-bot client to `tests.fakes.telegram.FakeTelegram`.

By default the processes have Telegram, the LLM and the placeholder image provider configured, photos on local
disk. `--all-services` configures, as a production deployment with every service would, WhatsApp (the fake Graph
API), Stripe (the fake API: no call is made, the users are subscribed in the database), S3 photo storage (moto's S3
server in this process), the moderation layer (the fake moderation API, asked about every photo prompt) and the
production image provider, Replicate (`tests.fakes.replicate.FakeReplicate` answering with a ~1 MP JPEG, which the
worker downloads as it would FLUX's output, instead of drawing a placeholder itself; the fake fetches each photo's
reference from the bucket by its presigned URL, as Replicate does when it can reach the bucket: the default on AWS
S3); the users still write through Telegram.

Messages are sent in batches with the backlog kept under one batch, so memory reflects steady work, not a queue.
The inbound rate limit is raised for the run (INBOUND_PER_USER_PER_MINUTE) so no message is stored as `limited`.
RSS (VmRSS) of both processes is read at the half-way turn and at the end, and the peak (VmHWM) at the end.

The last line is `peak_rss_mb=<n>` (the larger peak of the two); targets: <= 200 MB each, and RSS growing by no
more than 5% between the half-way and the last turn.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.common import (
    AvaProcess,
    ava_env,
    delete_ava_keys,
    free_port,
    rss_mb,
    run_benchmark,
    temporary_database,
)
from bench.ingest import TELEGRAM_SECRET, telegram_update
from bench.postprocess import make_photo
from core.models import Avatar, Direction, Message, MessageStatus, Mode
from imaging.models import Photo
from imaging.s3 import S3Connection, S3PhotoStore
from imaging.storage import LocalPhotoStore, PhotoStore
from tests.fakes import stripe as fake_stripe
from tests.fakes import whatsapp as fake_whatsapp
from tests.fakes.entitlements import subscribe
from tests.fakes.moderation import FakeModerations
from tests.fakes.replicate import FakeReplicate
from tests.fakes.s3 import MotoS3
from tests.fakes.server import FakeServer
from tests.fakes.stripe import FakeStripe
from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.fakes.whatsapp import FakeGraph
from tests.support import ready_user

TARGET_MB = 200.0
TARGET_GROWTH = 0.05
PHOTO_WORDS = "send me a photo of you at the beach"
LLM_KEY = "bench-llm-key"
CHAT_BASE = 6_100_000_000


async def answer(request: web.Request) -> web.Response:
    """A zero-latency OpenAI-compatible completion: `send_photo` when asked for a photo and offered the tool,
    else an echo of the user's last message."""
    body = await request.json()
    last = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
    message: dict[str, Any] = {"role": "assistant", "content": f"echo: {last}", "refusal": None}
    if PHOTO_WORDS in last and body.get("tools"):
        arguments = json.dumps({"scene_description": "at the beach at sunset, smiling"})
        call_id = f"call_{uuid.uuid4().hex[:12]}"
        message = {
            "role": "assistant",
            "content": "One moment, taking one for you",
            "refusal": None,
            "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": "send_photo", "arguments": arguments}}
            ],
        }
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": "tool_calls" if "tool_calls" in message else "stop",
    }
    return web.json_response(
        {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [choice],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )


class QuietLLM(FakeServer):
    """The fake LLM server, keeping no record of requests (10,000 prompts would only fill this process)."""

    def __init__(self) -> None:
        super().__init__()
        self.handle("POST", "/v1/chat/completions", answer)
        self.requests = _Discard()


class _Discard(list[Any]):
    def append(self, item: Any) -> None:
        """Drop it."""


def message_text(n: int, photo_every: int) -> str:
    """The `n`th message's text: every `photo_every`th asks for a photo."""
    return PHOTO_WORDS if photo_every and n % photo_every == photo_every - 1 else f"Tell me about your day ({n})"


def update(n: int, users: int, photo_every: int) -> tuple[str, bytes, dict[str, str]]:
    """Telegram update `n` from user `n % users`."""
    path, raw, headers = telegram_update(n, n % users)
    body = json.loads(raw)
    body["message"]["text"] = message_text(n, photo_every)
    return path, json.dumps(body).encode(), headers


async def bench_users(count: int, store: PhotoStore) -> None:
    """`count` Telegram users in intimate mode, subscribed, whose avatar has an approved reference photo (stored
    where the worker reads photos: every photo is conditioned on it)."""
    reference = await store.put(make_photo(832, 1248))
    for i in range(count):
        user = await ready_user(str(CHAT_BASE + i), channel="telegram", mode=Mode.INTIMATE)
        await subscribe(user.id, messages=10_000_000, photos=10_000_000)
        avatar = await Avatar.get(user_id=user.id)
        photo = await Photo.create(
            user=user,
            avatar=avatar,
            kind="reference",
            status="ready",
            source_key=f"bench:reference:{user.id}",
            storage_key=reference,
        )
        await Avatar.filter(id=avatar.id).update(reference_photo_id=photo.id)


async def done_turns() -> int:
    """Inbound messages whose turn is done."""
    return await Message.filter(direction=Direction.INBOUND, status=MessageStatus.DONE).count()


async def wait_for(check: Any, target: int, procs: list[AvaProcess], within: float) -> None:
    """Poll `check()` until it reaches `target` (at most `within` seconds), the processes alive."""
    deadline = time.monotonic() + within
    while (value := await check()) < target:
        for proc in procs:
            proc.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{value} of {target} after {within} s:\n{procs[-1].log_tail()}")
        await asyncio.sleep(0.1)


async def all_services(stack: contextlib.AsyncExitStack) -> tuple[dict[str, str], S3Connection]:
    """Start the fakes of WhatsApp, Stripe, moderation and S3; the settings configuring them, and an open
    connection to the bucket (where the users' reference photos go)."""
    graph = await stack.enter_async_context(FakeGraph())
    stripe = await stack.enter_async_context(FakeStripe())
    moderation = await stack.enter_async_context(FakeModerations())
    moderation.requests = _Discard()
    replicate = await stack.enter_async_context(FakeReplicate(polls_to_finish=1))
    replicate.jpeg = make_photo(832, 1248)  # FLUX's ~1 MP output
    replicate.created = replicate.fetched = _Discard()
    s3 = stack.enter_context(MotoS3())
    bucket = "ava-bench"
    await s3.create_bucket(bucket)
    connection = await stack.enter_async_context(S3Connection(s3.config(bucket)))
    settings = {
        "whatsapp_enabled": "true",
        "whatsapp_phone_id": fake_whatsapp.PHONE_ID,
        "whatsapp_token": "bench-whatsapp-token",
        "whatsapp_app_secret": "bench-whatsapp-app-secret",
        "whatsapp_verify_token": "bench-whatsapp-verify-token",
        "whatsapp_api_base_url": graph.url,
        "stripe_secret_key": fake_stripe.API_KEY,
        "stripe_webhook_secret": fake_stripe.WEBHOOK_SECRET,
        "stripe_price_id": fake_stripe.PRICE_ID,
        "stripe_api_base": stripe.url,
        "moderation_disabled": "false",
        "moderation_base_url": f"{moderation.url}/v1",
        "moderation_api_key": "bench-moderation-key",
        "image_provider": "replicate",
        "replicate_api_token": replicate.token,
        "replicate_base_url": replicate.url,
        "s3_reachable_by_provider": "true",  # as on AWS S3 (the default there): the fake fetches references itself
        **s3.settings(bucket),
    }
    return settings, connection


async def run(turns: int, photos: int, users: int, batch: int, *, every_service: bool = False) -> dict[str, Any]:
    """Drive the two processes; their RSS at the half-way turn and at the end, and their peaks."""
    photo_every = turns // photos if photos else 0
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        async with (
            FakeTelegram() as telegram,
            QuietLLM() as llm,
            temporary_database() as db_url,
            contextlib.AsyncExitStack() as stack,
        ):
            telegram.calls = _Discard()  # the fake keeps no record: 10,000 sends would only fill this process
            services: dict[str, str] = {"image_provider": "placeholder"}
            store: PhotoStore = LocalPhotoStore(workdir / "media" / "photos")
            if every_service:
                services, connection = await all_services(stack)
                store = S3PhotoStore(connection, "photos/")
            await bench_users(users, store)
            env = ava_env(
                workdir,
                db_url,
                telegram_bot_token=TOKEN,
                telegram_webhook_secret=TELEGRAM_SECRET,
                telegram_api_base_url=telegram.url,
                llm_base_url=f"{llm.url}/v1",
                llm_api_key=LLM_KEY,
                inbound_per_user_per_minute="100000",
                photo_requests_per_user_per_hour="1000",
                **services,
            )
            web_proc = AvaProcess("serve", env, workdir, port=free_port())
            worker = AvaProcess("worker", env, workdir)
            procs = [web_proc, worker]
            started = time.monotonic()
            try:
                await web_proc.wait_healthy()
                async with aiohttp.ClientSession(web_proc.url) as http:
                    sent = 0
                    while sent < turns:
                        chunk = [update(n, users, photo_every) for n in range(sent, min(turns, sent + batch))]
                        await asyncio.gather(*(_post(http, *request) for request in chunk))
                        sent += len(chunk)
                        await wait_for(done_turns, sent - batch, procs, within=600)
                        if "half" not in result and sent >= turns // 2:
                            await wait_for(done_turns, turns // 2, procs, within=600)
                            result["half"] = {p.command: rss_mb(p.pid)[0] for p in procs}
                await wait_for(done_turns, turns, procs, within=600)
                await wait_for(_finished_photos, photos, procs, within=600)
                result["end"] = {p.command: rss_mb(p.pid)[0] for p in procs}
                result["peak"] = {p.command: rss_mb(p.pid)[1] for p in procs}
                result["seconds"] = time.monotonic() - started
                result["photos_ready"] = await Photo.filter(status="ready", kind="photo").count()
                if result["photos_ready"] < photos:
                    statuses = await Photo.filter(kind="photo").values_list("status", "error")
                    raise RuntimeError(f"photos not all ready: {statuses[:5]}\n{worker.log_tail(60)}")
            finally:
                for proc in procs:
                    proc.stop()
                await delete_ava_keys()
    return result


async def _finished_photos() -> int:
    return await Photo.filter(kind="photo", status__in=["ready", "failed", "blocked"]).count()


async def _post(http: aiohttp.ClientSession, path: str, body: bytes, headers: dict[str, str]) -> None:
    async with http.post(path, data=body, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"webhook answered {response.status}: {await response.text()}")


def main() -> None:
    """Print RSS figures; the last line is `peak_rss_mb=<n>`."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=10_000)
    parser.add_argument("--photos", type=int, default=500)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--batch", type=int, default=200, help="webhooks sent at once; the backlog stays under it")
    parser.add_argument(
        "--all-services",
        action="store_true",
        help="also configure WhatsApp, Stripe, S3, moderation and Replicate (see above)",
    )
    args = parser.parse_args()
    # The fakes' server logs a traceback each time a client drops a keep-alive connection: noise, not a failure.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    result = run_benchmark(run(args.turns, args.photos, args.users, args.batch, every_service=args.all_services))
    configured = (
        "Telegram, WhatsApp, Stripe, S3 (references by URL), moderation, Replicate"
        if args.all_services
        else "Telegram, placeholder images (no WhatsApp, Stripe, S3, moderation)"
    )
    print(
        f"{args.turns} turns and {result['photos_ready']} photos ready, {args.users} users, "
        f"in {result['seconds']:.0f} s; configured: {configured}"
    )
    for name in result["peak"]:
        half, end, peak = result["half"][name], result["end"][name], result["peak"][name]
        growth = (end - half) / half
        print(
            f"{name:<16} RSS at turn {args.turns // 2}: {half:6.1f} MB  at the end: {end:6.1f} MB  "
            f"growth {growth:+.1%}  peak {peak:6.1f} MB"
        )
    peak = max(result["peak"].values())
    print(f"targets: peak <= {TARGET_MB:.0f} MB each; growth <= {TARGET_GROWTH:.0%} from the half-way turn")
    print(f"peak_rss_mb={peak:.0f}")


if __name__ == "__main__":
    main()
