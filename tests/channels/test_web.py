"""The web channel: pokes the user's Redis pub/sub channel; the reply itself is already a stored row."""

from __future__ import annotations

import asyncio
import socket

import pytest
from arq.connections import ArqRedis

from channels.web import WebChannel, events_channel, web_ref
from core.errors import DeliveryError
from core.messages import ChatRef, TextReply
from core.ports import Outbox


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_web_ref_uses_the_user_id_as_chat_id() -> None:
    """A web user's chat is addressed by their user id."""
    assert web_ref(42) == ChatRef("web", "42")
    assert events_channel("42") == "ava:web:42"


def test_implements_the_outbox_port(redis: ArqRedis) -> None:
    """WebChannel satisfies `core.ports.Outbox` and is named "web"."""
    channel = WebChannel(redis)
    assert isinstance(channel, Outbox)
    assert channel.name == "web"


async def test_send_publishes_a_poke_on_the_users_channel(redis: ArqRedis) -> None:
    """send() publishes to ava:web:{chat_id}, which open chat streams listen on."""
    pubsub = redis.pubsub()
    await pubsub.subscribe("ava:web:42")
    try:
        await WebChannel(redis).send(web_ref(42), TextReply("hello"))
        message = None
        async with asyncio.timeout(5):
            while message is None:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        assert message["channel"] == b"ava:web:42"
    finally:
        await pubsub.aclose()


async def test_send_refuses_other_channels(redis: ArqRedis) -> None:
    """A reply addressed to another channel is a programming error, not a silent no-op."""
    with pytest.raises(ValueError, match="telegram"):
        await WebChannel(redis).send(ChatRef("telegram", "1"), TextReply("hi"))


async def test_send_raises_delivery_error_when_redis_is_down() -> None:
    """An unreachable Redis surfaces as DeliveryError."""
    dead = ArqRedis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2)
    try:
        with pytest.raises(DeliveryError):
            await WebChannel(dead).send(web_ref(1), TextReply("hi"))
    finally:
        await dead.aclose()
