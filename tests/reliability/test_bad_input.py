"""Bad input through the whole application: every malformed request answers 4xx, never 500, and stores nothing.

Each case here once answered 500 (issue 13): ids beyond 64 bits, NUL and lone surrogates in chat JSON, non-UTF-8
and broken multipart form bodies, deeply nested JSON, huge numeric query parameters; and oversized bodies are
refused with 413 before they are parsed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis

from ava_bot.http import FORM_MAX_BYTES, WEBHOOK_MAX_BYTES
from billing.models import BillingEvent
from core.models import Direction, Message, User
from tests.reliability.bad_app import TELEGRAM_SECRET, Stack, half_records, serve_stack

BIG_IDS = [str(2**63), str(2**64), "9" * 40, "-1", "1e3", "٢٥", "0x19", "+5"]
#: Every portal form route (POST), with the page whose CSRF token it takes.
FORM_ROUTES = [
    "/signin",
    "/signup",
    "/signout",
    "/account/sign-out-everywhere",
    "/account/avatar",
    "/mode",
    "/account/cancel",
    "/account/connect/telegram",
    "/account/unlink/1",
    "/photos/1/delete",
    "/adult",
    "/account/delete",
    "/billing/checkout",
    "/billing/manage",
    "/billing/dev-activate",
    "/portal/sign-in/not-a-token",
    "/chat/messages",
]
NESTED = b"[" * 100_000 + b"]" * 100_000
NESTED_OBJECT = b'{"a":' * 50_000 + b"1" + b"}" * 50_000


@pytest.fixture
async def stack(db: str, redis: ArqRedis, make_settings: Any, tmp_path: Path) -> AsyncIterator[Stack]:
    """The whole application, every channel and Stripe on fakes (no worker)."""
    async with serve_stack(make_settings, redis, tmp_path) as running:
        yield running


async def test_ids_beyond_64_bits_or_not_ascii_digits_are_not_found(stack: Stack) -> None:
    """A photo, identity or cursor id beyond BIGINT (or not plain digits) answers 4xx on every route taking one."""
    await stack.sign_up()
    token = await stack.token("/account")
    for raw in BIG_IDS:
        for path in (
            f"/photos/{raw}",
            f"/photos/{raw}/view",
            f"/photos/{raw}?t=abc",
            f"/photos/1?t={raw}",
            f"/photos/1/view?t={raw}",
            f"/gallery?before={raw}",
            f"/portal/sign-in/{raw}",
        ):
            response = await stack.client.get(path, allow_redirects=False)
            assert 400 <= response.status < 500, (path, response.status)
        for path in (f"/photos/{raw}/delete", f"/account/unlink/{raw}", f"/portal/sign-in/{raw}"):
            response = await stack.client.post(path, data={"csrf_token": token}, allow_redirects=False)
            assert 400 <= response.status < 500, (path, response.status)


async def test_nul_or_lone_surrogate_in_chat_json_is_400_and_stores_nothing(stack: Stack) -> None:
    """PostgreSQL text holds neither NUL nor a lone surrogate: the chat answers 400 with a reason, stores nothing."""
    await stack.sign_up()
    token = await stack.token("/chat")
    before = await Message.filter(direction=Direction.INBOUND).count()
    for bad in ("a\\u0000b", "\\ud800", "x\\udfff", "\\ud83d"):
        for field in ("text", "choice", "client_id"):
            body = {"text": "hello", "client_id": uuid.uuid4().hex}
            raw = json.dumps(body).replace('"' + str(body.get(field, "")) + '"', f'"{bad}"')
            if field not in body:
                raw = raw[:-1] + f', "{field}": "{bad}"}}'
            response = await stack.client.post(
                "/chat/messages",
                data=raw.encode(),
                headers={"X-CSRF-Token": token, "Content-Type": "application/json"},
            )
            assert response.status == 400, (bad, field, response.status, await response.text())
            assert "error" in await response.json()
    assert await Message.filter(direction=Direction.INBOUND).count() == before


async def test_non_utf8_form_bodies_are_400(stack: Stack) -> None:
    """A form body that is not UTF-8 answers 400 on every form route, signed in or not."""
    token = await stack.token("/signin")
    body = b"email=\xff\xfe%40x&password=\xc3\x28&csrf_token=" + token.encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    for path in FORM_ROUTES:
        response = await stack.client.post(path, data=body, headers=headers, allow_redirects=False)
        assert 300 <= response.status < 500, (path, response.status)
    await stack.sign_up()
    token = await stack.token("/account")
    body = b"mode=\xff&client_id=\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe&csrf_token=" + token.encode()
    for path in FORM_ROUTES:
        response = await stack.client.post(path, data=body, headers=headers, allow_redirects=False)
        assert 300 <= response.status < 500, (path, response.status)
    assert await half_records() == []


async def test_broken_multipart_bodies_are_400(stack: Stack) -> None:
    """A multipart body that breaks off, lacks its boundary or its headers answers 4xx on every form route."""
    token = await stack.token("/signin")
    broken = [
        ("multipart/form-data; boundary=xyz", b'--xyz\r\nContent-Disposition: form-data; name="email"\r\n\r\nab'),
        ("multipart/form-data; boundary=xyz", b"garbage without any boundary"),
        ("multipart/form-data", b"--xyz\r\n\r\n--xyz--\r\n"),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nno headers here\r\n--xyz--\r\n"),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data\r\n\r\nx\r\n--xyz--\r\n"),
        (
            "multipart/form-data; boundary=xyz",
            b'--xyz\r\nContent-Disposition: form-data; name="csrf_token"\r\nContent-Type: text/plain; charset=utf-8'
            b"\r\n\r\n\xff\xfe\r\n--xyz--\r\n",
        ),
        ("multipart/mixed; boundary=xyz", b"--xyz\r\n\r\n--xyz--\r\n"),
    ]
    for signed_in in (False, True):
        if signed_in:
            await stack.sign_up()
            token = await stack.token("/account")
        for path in FORM_ROUTES:
            for content_type, body in broken:
                headers = {"Content-Type": content_type, "X-CSRF-Token": token}
                response = await stack.client.post(path, data=body, headers=headers, allow_redirects=False)
                assert response.status < 500, (path, content_type, body[:40], response.status)
    assert await half_records() == []


async def test_deeply_nested_json_is_400_on_every_json_route(stack: Stack) -> None:
    """100,000 nested brackets answer 400 (never a RecursionError 500) on the chat, checkout and every webhook."""
    await stack.sign_up()
    token = await stack.token("/chat")  # opening the chat stores the request for Ava's greeting
    greeted = await Message.filter(direction=Direction.INBOUND).count()
    headers = {"X-CSRF-Token": token, "Content-Type": "application/json", "Accept": "application/json"}
    for body in (NESTED, NESTED_OBJECT):
        for path in ("/chat/messages", "/billing/checkout"):
            response = await stack.client.post(path, data=body, headers=headers, allow_redirects=False)
            assert 400 <= response.status < 500, (path, response.status)
        for post in (stack.telegram_update, stack.whatsapp_update, stack.stripe_event):
            response = await post(body)
            assert 400 <= response.status < 500, (post.__name__, response.status)
    assert await Message.filter(direction=Direction.INBOUND).count() == greeted
    assert await BillingEvent.all().count() == 0


async def test_huge_or_odd_numeric_query_parameters_are_400(stack: Stack) -> None:
    """`?after=` / `Last-Event-ID` beyond 64 bits or not plain digits answer 400 before any query runs."""
    await stack.sign_up()
    for raw in [raw for raw in BIG_IDS if raw != "+5"]:  # "+" is a space in a query: " 5" is the id 5
        response = await stack.client.get(f"/chat/events?after={raw}")
        assert response.status == 400, (raw, response.status)
        response = await stack.client.get("/chat/events", headers={"Last-Event-ID": raw})
        assert response.status == 400, (raw, response.status)
        response = await stack.client.get(f"/gallery?before={raw}", allow_redirects=False)
        assert 300 <= response.status < 500, (raw, response.status)


async def test_oversized_bodies_are_413_before_parsing(stack: Stack) -> None:
    """A body over the size limit answers 413 on every webhook and form, whatever it holds, and stores nothing."""
    await stack.sign_up()
    token = await stack.token("/chat")  # opening the chat stores the request for Ava's greeting
    greeted = await Message.filter(direction=Direction.INBOUND).count()
    huge = b'{"update_id": 1, "pad": "' + b"x" * (WEBHOOK_MAX_BYTES + 1) + b'"}'
    big = b'{"text": "hi", "pad": "' + b"x" * FORM_MAX_BYTES + b'"}'
    assert (await stack.telegram_update(huge)).status == 413
    assert (await stack.whatsapp_update(huge)).status == 413
    assert (await stack.stripe_event(huge)).status == 413
    form = b"csrf_token=" + token.encode() + b"&text=" + b"a" * FORM_MAX_BYTES
    for path in FORM_ROUTES:
        for content_type, body in (("application/x-www-form-urlencoded", form), ("application/json", big)):
            headers = {"Content-Type": content_type, "X-CSRF-Token": token}
            response = await stack.client.post(path, data=body, headers=headers, allow_redirects=False)
            assert response.status == 413, (path, content_type, response.status)
    assert await Message.filter(direction=Direction.INBOUND).count() == greeted
    assert await User.all().count() == 1


async def test_a_chunked_body_without_a_length_stops_at_the_limit(stack: Stack) -> None:
    """A body sent in chunks (no Content-Length) is cut off with 413 once it passes the route's limit."""
    token = await stack.token("/signin")

    async def chunks(total: int) -> AsyncIterator[bytes]:
        yield b"csrf_token=" + token.encode() + b"&email="
        for _ in range(total // 8192 + 1):
            yield b"a" * 8192

    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    response = await stack.client.post("/signin", data=chunks(FORM_MAX_BYTES), headers=headers)
    assert response.status == 413
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
    webhook = await stack.client.post("/webhooks/telegram", data=chunks(WEBHOOK_MAX_BYTES), headers=headers)
    assert webhook.status == 413
