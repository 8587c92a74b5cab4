"""Scale-out: 2 real `ava-bot serve` and 2 real `ava-bot worker` processes on one PostgreSQL database, one Redis
database and one S3 bucket (moto's server), the LLM, Replicate and Telegram faked in the test process.

20 users write 10 messages each through Telegram's webhook, alternating between the two webs (each user's messages
one after the other, the users all at once); one message of each asks the model for a photo (`send_photo`). Then
each user signs in on the portal with a `/portal` link and looks at the photos through both webs.
"""

from __future__ import annotations

import asyncio
import io
import secrets
from dataclasses import replace
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from aiohttp import web
from PIL import Image

from ava_bot.queueing import DRAIN_JOB
from core.models import Avatar, Direction, Message, MessageStatus, Mode, User
from imaging.models import Photo, PhotoKindChoice, PhotoStatus
from imaging.s3 import S3Connection, S3PhotoStore
from imaging.service import GENERATE_PHOTO_JOB
from tests.fakes.openai import FakeOpenAI
from tests.fakes.s3 import MotoS3, unique_bucket
from tests.reliability.conftest import Fakes
from tests.reliability.drive import TelegramChat, entitled_user
from tests.reliability.processes import AvaStack
from tests.support import eventually

USERS = 20
MESSAGES = 10
#: The message (by index) of each user that asks for a photo.
PHOTO_MESSAGE = 4
SNAP = "snap"
CHAT_BASE = 7100
JPEG_MAGIC = b"\xff\xd8\xff"


class PhotoOnRequestLLM(FakeOpenAI):
    """The fake LLM answering a message that contains `SNAP` with a `send_photo` call (whoever sends it first),
    and every other message with "echo: <text>"."""

    async def _answer(self, request: web.Request) -> web.Response:
        body = await request.json()
        last_user = next((m["content"] for m in reversed(body.get("messages", [])) if m["role"] == "user"), "")
        if SNAP in last_user:
            # A planned tool call answers this request only: queued and taken before any await.
            self.call_tool("send_photo", {"scene_description": "reading in a sunny cafe"}, text=f"on it: {last_user}")
            self.plan.rotate(1)  # the call just queued goes first
        return await super()._answer(request)


def texts_for(chat: int) -> list[str]:
    """What user `chat` writes, in order."""
    return [f"u{chat} {SNAP if n == PHOTO_MESSAGE else 'm'}{n}" for n in range(MESSAGES)]


def expected_answer(text: str) -> str:
    return f"on it: {text}" if SNAP in text else f"echo: {text}"


async def reference_in_s3(user: User, store: S3PhotoStore, originals: S3PhotoStore, jpeg: bytes) -> None:
    """Give the user's avatar an approved reference portrait stored in the bucket (as setup would)."""
    avatar = await Avatar.get(user_id=user.id)
    reference = await Photo.create(
        user_id=user.id,
        avatar_id=avatar.id,
        kind=PhotoKindChoice.REFERENCE,
        status=PhotoStatus.READY,
        source_key=f"scale-out-reference:{user.id}",
        storage_key=await store.put(jpeg),
        original_key=await originals.put(jpeg),
        ready_at=datetime.now(UTC),
    )
    await Avatar.filter(id=avatar.id).update(reference_photo_id=reference.id)


async def converse(chat: TelegramChat, webs: list[str]) -> None:
    """The user's messages one after the other (each stored before the next is sent), alternating webs."""
    for n, text in enumerate([*texts_for(chat.chat_id), "/portal"]):
        status = await chat.say(text, base_url=webs[(chat.chat_id + n) % 2])
        assert status == 200, f"chat {chat.chat_id} message {n}: HTTP {status}"


async def all_done(user_ids: list[int]) -> bool:
    """Every inbound message answered and every reply and photo notice sent."""
    inbound = await Message.filter(user_id__in=user_ids, direction=Direction.INBOUND).count()
    if inbound != USERS * (MESSAGES + 1):
        return False
    if await Message.filter(user_id__in=user_ids, status=MessageStatus.PENDING).exists():
        return False
    ready = await Photo.filter(user_id__in=user_ids, kind=PhotoKindChoice.PHOTO, status=PhotoStatus.READY).count()
    notices = await Message.filter(
        user_id__in=user_ids,
        direction=Direction.OUTBOUND,
        status=MessageStatus.SENT,
        payload__contains={"type": "photo"},
    ).count()
    return ready == USERS and notices == USERS


def sent_to(fakes: Fakes, chat: int) -> list[dict[str, Any]]:
    """The sendMessage calls to `chat`, in the order Telegram received them."""
    return [c.params for c in fakes.telegram.calls_to("sendMessage") if str(c.params.get("chat_id")) == str(chat)]


def button_urls(params: dict[str, Any]) -> list[str]:
    markup = params.get("reply_markup") or {}
    return [b["url"] for row in markup.get("inline_keyboard", []) for b in row if "url" in b]


def links_photo(params: dict[str, Any], photo_id: int) -> bool:
    """Whether the message carries a link to photo `photo_id` (`/photos/<id>` or `/photos/<id>/view`)."""
    return any(urlsplit(u).path.split("/")[1:3] == ["photos", str(photo_id)] for u in button_urls(params))


async def sign_in(client: httpx.AsyncClient, web_url: str, link: str) -> str:
    """Open the magic link on `web_url`; the `Cookie` header of the session it starts."""
    answer = await client.get(web_url + urlsplit(link).path, follow_redirects=False)
    assert answer.status_code == 303, answer.text[:300]
    cookie = SimpleCookie()
    for header in answer.headers.get_list("set-cookie"):
        cookie.load(header)
    # The cookie is `Secure` (PUBLIC_BASE_URL is https): sent by hand to the plain-HTTP test ports.
    return "; ".join(f"{name}={morsel.value}" for name, morsel in cookie.items())


async def test_two_webs_two_workers_on_s3(ava_env: dict[str, str], fakes: Fakes, tmp_path: Path) -> None:
    """200 messages and 20 photos through 2 webs and 2 workers: per-user order holds, every message answered once,
    every photo stored once in S3 and shown once, viewable by its owner through either web and by no one else."""
    bucket = unique_bucket()
    with MotoS3() as moto:
        await moto.create_bucket(bucket)
        s3_env = {
            "S3_ENDPOINT_URL": moto.url,
            "S3_BUCKET": bucket,
            "S3_ACCESS_KEY_ID": f"AKIA{secrets.token_hex(8).upper()}",
            "S3_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
            "S3_REACHABLE_BY_PROVIDER": "true",  # moto is on loopback, where the fake Replicate fetches from
        }
        async with PhotoOnRequestLLM() as llm:
            env = {**ava_env, **s3_env, "LLM_BASE_URL": llm.base_url, "MEDIA_DIR": str(tmp_path / "no-media")}
            stack = AvaStack(tmp_path / "stack", env)
            try:
                await run_scenario(stack, replace(fakes, llm=llm), moto, bucket)
            finally:
                stack.kill_all()
    assert not (tmp_path / "no-media").exists()  # nothing went to local disk


async def run_scenario(stack: AvaStack, fakes: Fakes, moto: MotoS3, bucket: str) -> None:
    """Seed the users, start the processes, drive the chats, then check what Telegram, the bucket and the webs show."""
    async with S3Connection(moto.config(bucket)) as connection:
        store = S3PhotoStore(connection, "photos/")
        users = await seed_users(store, S3PhotoStore(connection, "originals/"))
        webs, workers = await stack.start(webs=2, workers=2)
        urls = [w.url for w in webs]
        chats = [TelegramChat(urls[0], fakes.telegram_webhook_secret, chat) for chat in users]
        await asyncio.gather(*(converse(chat, urls) for chat in chats))
        ids = [u.id for u in users.values()]
        await eventually(lambda: all_done(ids), timeout=75, what="every message answered and every photo shown")

        links = {chat: await check_conversation(fakes, chat, user) for chat, user in users.items()}
        # Stored once: the bucket holds the references and exactly one object per photo, nothing else.
        photos = {p.user_id: p for p in await Photo.filter(kind=PhotoKindChoice.PHOTO)}
        references = await Photo.filter(kind=PhotoKindChoice.REFERENCE)
        expected = {f"photos/{p.storage_key}" for p in [*photos.values(), *references]}
        assert set(await moto.keys(bucket, "photos/")) == expected and len(expected) == 2 * USERS
        await check_viewing(store, urls, users, photos, links)
        # The references went by presigned URL: Replicate fetched each photo's from the bucket, the original's bytes.
        kept = S3PhotoStore(connection, "originals/")
        originals = {f"/{bucket}/originals/{p.original_key}": await kept.get(p.original_key or "") for p in references}
        fetched = {urlsplit(url).path: (status, body) for url, status, body in fakes.replicate.fetched}
        assert fetched == {path: (200, body) for path, body in originals.items()}
    for worker in workers:  # both workers took turns and photos (arq logs "→ <job id>:<function>(" per job)
        assert f":{DRAIN_JOB}(" in worker.output and f":{GENERATE_PHOTO_JOB}(" in worker.output
    await stack.stop_all()
    stack.assert_no_secrets()


async def seed_users(store: S3PhotoStore, originals: S3PhotoStore) -> dict[int, User]:
    """USERS subscribed users in intimate mode, their references in the bucket, by Telegram chat id."""
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 96), (120, 90, 200)).save(jpeg, format="JPEG")
    users: dict[int, User] = {}
    for chat in range(CHAT_BASE, CHAT_BASE + USERS):
        users[chat] = await entitled_user(str(chat), mode=Mode.INTIMATE)
        await reference_in_s3(users[chat], store, originals, jpeg.getvalue())
    return users


async def check_conversation(fakes: Fakes, chat: int, user: User) -> str:
    """As Telegram saw it: each message answered once and in order, one photo notice after its request, a sign-in
    link last; every inbound row done. Returns the sign-in link."""
    sent = sent_to(fakes, chat)
    texts = [str(p.get("text")) for p in sent]
    answers = [t for t in texts if t.startswith(("echo: ", "on it: "))]
    assert answers == [expected_answer(t) for t in texts_for(chat)], f"chat {chat}: {answers}"
    photo = await Photo.get(user_id=user.id, kind=PhotoKindChoice.PHOTO)
    notices = [i for i, p in enumerate(sent) if links_photo(p, photo.id)]
    assert len(notices) == 1, f"chat {chat}: photo notices at {notices}"
    assert notices[0] > texts.index(expected_answer(texts_for(chat)[PHOTO_MESSAGE]))
    sign_in = [u for p in sent for u in [*button_urls(p), *str(p.get("text")).split()] if "/portal/sign-in/" in u]
    assert len(sign_in) == 1, f"chat {chat}: sign-in links {sign_in}"
    inbound = await Message.filter(user_id=user.id, direction=Direction.INBOUND).order_by("id")
    assert [m.text for m in inbound] == [*texts_for(chat), "/portal"]
    assert all(m.status == MessageStatus.DONE for m in inbound)
    return sign_in[0]


async def check_viewing(
    store: S3PhotoStore, urls: list[str], users: dict[int, User], photos: dict[int, Photo], links: dict[int, str]
) -> None:
    """Each owner, signed in on one web, gets their photo's bytes (as in the bucket) from both webs, and a 404 for
    another user's photo."""
    chat_ids = list(users)
    async with httpx.AsyncClient(timeout=15) as client:
        for index, chat in enumerate(chat_ids):
            own = photos[users[chat].id]
            assert own.storage_key is not None
            stored = await store.get(own.storage_key)
            assert stored.startswith(JPEG_MAGIC)
            cookie = await sign_in(client, urls[index % 2], links[chat])
            other = photos[users[chat_ids[(index + 1) % USERS]].id]
            for url in urls:
                answer = await client.get(f"{url}/photos/{own.id}", headers={"Cookie": cookie})
                assert answer.status_code == 200, (chat, url, answer.status_code)
                assert answer.content == stored
                assert answer.headers["Cache-Control"] == "private, no-store"
                refused = await client.get(f"{url}/photos/{other.id}", headers={"Cookie": cookie})
                assert refused.status_code == 404, (chat, url, refused.status_code)
