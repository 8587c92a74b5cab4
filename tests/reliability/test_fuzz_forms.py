"""Property-based fuzzing of every portal form (each POST route of the app's router) through the whole application.

Each example posts arbitrary fields (known names, nasty values: NUL, lone surrogates, RTL, emoji, huge text) as
a URL-encoded form, a multipart form or JSON, with the session's real CSRF token most of the time, signed in or
not. The property: never a 5xx, and nothing stored half (no user without credentials or identity, no pending
inbound row without its drain scheduled). A test also checks the list below covers every POST route.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from arq.connections import ArqRedis
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from tests.reliability.bad_app import Stack, half_records, last_message_id, serve_stack
from tests.reliability.fuzz_strategies import NASTY_TEXT, form_fields

#: Every POST route of the portal, its path parameters as `{}` (the webhooks have their own fuzzing).
FORM_ROUTES = [
    "/signup",
    "/signin",
    "/signout",
    "/account/sign-out-everywhere",
    "/portal/sign-in/{}",
    "/account/avatar",
    "/mode",
    "/account/cancel",
    "/account/connect/{}",
    "/account/unlink/{}",
    "/chat/messages",
    "/photos/{}/delete",
    "/adult",
    "/account/delete",
    "/billing/checkout",
    "/billing/manage",
    "/billing/dev-activate",
]
WEBHOOKS = {"/webhooks/telegram", "/webhooks/whatsapp", "/billing/webhook"}
SEGMENTS = st.one_of(
    st.sampled_from(["1", "telegram", "whatsapp", "web", str(2**64), "-1", "٢٥", "%00", "x" * 300]),
    st.text(min_size=1, max_size=20),
)
ENCODINGS = ["form", "multipart", "json"]

FUZZ = settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
async def stack(db: str, redis: ArqRedis, make_settings: Any, tmp_path: Path) -> AsyncIterator[Stack]:
    """The whole application, the gate open, rate limits out of the fuzzer's way."""
    limits = {
        "signin_per_ip_per_15min": 100_000,
        "signin_per_account_per_15min": 100_000,
        "signup_per_ip_per_hour": 100_000,
        "inbound_per_user_per_minute": 100_000,
    }
    async with serve_stack(make_settings, redis, tmp_path, **limits) as running:
        running.gate.open = True
        yield running


def encode(fields: dict[str, str], encoding: str) -> tuple[bytes, str]:
    """The body and its content type; lone surrogates go out as the bytes a broken client would send."""
    if encoding == "json":
        return json.dumps(fields).encode(), "application/json"
    if encoding == "form":
        return urlencode(fields, errors="surrogatepass").encode(), "application/x-www-form-urlencoded"
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{quote(name)}"\r\n\r\n'.encode()
        + value.encode("utf-8", "surrogatepass")
        + b"\r\n"
        for name, value in fields.items()
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def be_signed_in(stack: Stack, signed_in: bool) -> str:
    """Put the browser in the wanted state (a fresh account when it lost its own); its current CSRF token."""
    state = await stack.client.get("/account", allow_redirects=False)
    if signed_in and state.status != 200:
        stack.forget_cookies()
        await stack.sign_up(f"fuzz-{uuid.uuid4().hex[:12]}@example.com")
    elif not signed_in and state.status == 200:
        stack.forget_cookies()
    return await stack.token("/account" if signed_in else "/signin")


async def test_the_fuzzed_routes_are_every_post_route_of_the_app(stack: Stack) -> None:
    """The fuzzing below covers each POST route the application registers (a new form cannot be forgotten)."""
    posts = {r.resource.canonical for r in stack.client.app.router.routes() if r.method == "POST" and r.resource}
    listed = {path.replace("{}", "{x}") for path in FORM_ROUTES}
    canonical = {_braces(path) for path in posts - WEBHOOKS}
    assert canonical == {_braces(path) for path in listed}


def _braces(path: str) -> str:
    """`path` with every `{name}` written `{}`."""
    return re.sub(r"\{[^}]*\}", "{}", path)


@FUZZ
@given(
    route=st.sampled_from(FORM_ROUTES),
    segment=SEGMENTS,
    encoding=st.sampled_from(ENCODINGS),
    signed_in=st.booleans(),
    data=st.data(),
)
@example(route="/chat/messages", segment="1", encoding="json", signed_in=True, data=None)
async def test_every_form_never_answers_5xx(
    stack: Stack, redis: ArqRedis, route: str, segment: str, encoding: str, signed_in: bool, data: Any
) -> None:
    """Any fields, any encoding, any path parameter: 2xx, 3xx or 4xx, and every stored row whole."""
    token = await be_signed_in(stack, signed_in)
    if data is None:  # the explicit example: a chat message carrying a NUL, with the right token
        fields = {"text": "a\x00b", "client_id": uuid.uuid4().hex, "csrf_token": token}
    else:
        fields = data.draw(form_fields(token), label="fields")
    body, content_type = encode(fields, encoding)
    path = route.replace("{}", quote(segment, safe="", errors="surrogatepass"))
    sent = fields.get("csrf_token", "")
    # A header holds printable ASCII only (the client refuses the rest): else the session's token.
    headers = {"Content-Type": content_type, "X-CSRF-Token": sent if sent.isascii() and sent.isprintable() else token}
    since = await last_message_id()
    response = await stack.client.post(path, data=body, headers=headers, allow_redirects=False)
    assert response.status < 500, (path, encoding, fields, response.status)
    assert await half_records(redis, since=since) == [], (path, fields)


async def test_nasty_texts_through_the_chat_store_whole_or_are_refused(stack: Stack, redis: ArqRedis) -> None:
    """Each nasty text in the chat: stored whole (202) or refused (400/413) — never a 500."""
    token = await be_signed_in(stack, True)
    for text in NASTY_TEXT:
        fields = {"text": text, "client_id": uuid.uuid4().hex}
        body, content_type = encode(fields, "json")
        headers = {"Content-Type": content_type, "X-CSRF-Token": token}
        response = await stack.client.post("/chat/messages", data=body, headers=headers)
        assert response.status in (202, 400, 413), (text[:20], response.status)
    assert await half_records(redis) == []
