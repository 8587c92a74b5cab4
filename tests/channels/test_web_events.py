"""Live chat streams: one Redis pub/sub connection per web process fanned out to every stream, reconnecting after
Redis errors, and a per-user stream cap shared by every replica. Real PostgreSQL and Redis; the web chat routes
are installed on a bare application whose signed-in user is named by a test header (constructor injection)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from aiohttp import ClientResponse, TCPConnector, web
from aiohttp.test_utils import TestClient, TestServer
from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.asyncio import Redis
from redis.exceptions import RedisError

from channels.web import WEB_CHAT, WebChannel, setup_web_chat, web_ref
from channels.web_events import EventHub, Listener, events_channel, redis_db, slots_key
from core.inbox import Inbox
from core.messages import TextReply
from core.models import Message, User
from tests.fakes.queue import RecordingQueue
from tests.portal.conftest import store_reply
from tests.support import eventually

USER_HEADER = "X-Test-User"
#: Pub/sub channels are global to the Redis server, not per database: users of this module get ids far from the
#: small ones other concurrently running tests use, so their pokes and activities never reach these streams.
_IDS = itertools.count(random.randrange(10**9, 2 * 10**9, 10**6))


async def new_user() -> User:
    """A user whose id no other test run uses."""
    return await User.create(id=next(_IDS))


async def header_user(request: web.Request) -> User | None:
    """The signed-in user named by the test header (stands in for the portal's session lookup)."""
    raw = request.headers.get(USER_HEADER)
    return await User.get_or_none(id=int(raw)) if raw else None


async def no_csrf(request: web.Request, body: Mapping[str, Any]) -> None:
    """Streams are GETs: the CSRF check is never asked."""


def view(row: Message) -> Mapping[str, Any]:
    return {"id": row.id, "text": row.text}


@contextlib.asynccontextmanager
async def chat_server(redis: Redis, *, streams_per_user: int = 5, keepalive: float = 15.0) -> AsyncIterator[TestClient]:
    """The web chat routes on their own application and server: one web process."""
    app = web.Application()
    setup_web_chat(
        app,
        inbox=Inbox(RecordingQueue()),
        redis=redis,
        session_user=header_user,
        require_csrf=no_csrf,
        message_view=view,
        keepalive=keepalive,
        streams_per_user=streams_per_user,
    )
    async with TestClient(TestServer(app), connector=TCPConnector(limit=0)) as client:
        yield client


async def open_stream(client: TestClient, user: User, **headers: str) -> ClientResponse:
    return await client.get("/chat/events", headers={USER_HEADER: str(user.id), **headers})


async def next_event(response: ClientResponse, timeout: float = 5.0) -> dict[str, str]:
    """The next SSE event that carries data (comments and the retry hint skipped)."""
    fields: dict[str, str] = {}
    while True:
        line = (await asyncio.wait_for(response.content.readline(), timeout)).decode().rstrip("\n")
        if line == "":
            if "data" in fields:
                return fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


async def pubsub_clients(redis: Redis) -> list[dict[str, Any]]:
    """The connections in pub/sub mode on this Redis database (other databases belong to other test runs)."""
    db = int(redis.connection_pool.connection_kwargs.get("db", 0))
    return [c for c in await redis.client_list(_type="pubsub") if int(c["db"]) == db]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_many_streams_use_one_pubsub_connection_and_get_only_their_own_events(db: str, redis: ArqRedis) -> None:
    """200 streams of 40 users in one process hold ONE pub/sub connection (one subscription per user); each stream
    gets its own user's rows and activities and never another user's; closing them all unsubscribes."""
    users = [await new_user() for _ in range(40)]
    before = len(await pubsub_clients(redis))
    async with chat_server(redis) as client:
        pairs = [(user, stream) for user in users for stream in [None] * 5]
        streams = await asyncio.gather(*(open_stream(client, user) for user, _ in pairs))
        assert [s.status for s in streams] == [200] * 200
        assert len(await pubsub_clients(redis)) == before + 1
        counts = dict(await redis.pubsub_numsub(*(events_channel(str(u.id), redis_db(redis)) for u in users)))
        assert set(counts.values()) == {1}
        channel = WebChannel(redis)
        for index, user in enumerate(users):
            if index % 2 == 0:
                await channel.show_activity(web_ref(user.id), "typing")
        rows = {}
        for user in users:
            rows[user.id] = await store_reply(user.id, TextReply(f"for {user.id}"))
            await channel.send(web_ref(user.id), TextReply(f"for {user.id}"))
        for index, (user, _) in enumerate(pairs):
            events = [await next_event(streams[index])]
            while "id" not in events[-1]:
                events.append(await next_event(streams[index]))
            assert events[-1]["id"] == str(rows[user.id].id)
            assert json.loads(events[-1]["data"])["text"] == f"for {user.id}"
            typing = [{"event": "activity", "data": '{"kind":"typing"}'}]
            assert events[:-1] == (typing if users.index(user) % 2 == 0 else [])
        for stream in streams:
            stream.close()
        hub = client.app[WEB_CHAT].hub

        async def all_closed() -> bool:
            return not hub.channels and not await redis.keys("ava:web:streams:*")

        await eventually(all_closed, what="every stream to end, unsubscribe and free its slot")
        counts = dict(await redis.pubsub_numsub(*(events_channel(str(u.id), redis_db(redis)) for u in users)))
        assert set(counts.values()) == {0}
        assert len(await pubsub_clients(redis)) == before


async def test_a_users_last_stream_closing_unsubscribes(db: str, redis: ArqRedis) -> None:
    """The user's channel stays subscribed while one of their streams is open and is dropped with the last."""
    user = await new_user()
    channel = events_channel(str(user.id), redis_db(redis))
    async with chat_server(redis) as client:
        first, second = await open_stream(client, user), await open_stream(client, user)
        assert dict(await redis.pubsub_numsub(channel)) == {channel.encode(): 1}
        first.close()

        async def one_slot_left() -> bool:
            return await redis.zcard(slots_key(user.id)) == 1

        await eventually(one_slot_left, what="the first stream to end")
        assert dict(await redis.pubsub_numsub(channel)) == {channel.encode(): 1}
        second.close()

        async def unsubscribed() -> bool:
            return dict(await redis.pubsub_numsub(channel)) == {channel.encode(): 0}

        await eventually(unsubscribed, what="the channel to be unsubscribed")


async def test_pokes_on_another_redis_database_are_not_heard(db: str, redis: ArqRedis) -> None:
    """Pub/sub is server-wide: a deployment on another database number of the same Redis server pokes the same
    chat id on its own channel, which this deployment's stream never hears; its own poke still arrives."""
    user = await new_user()
    other_db = (redis_db(redis) + 1) % 16
    neighbour = Redis(**{**redis.connection_pool.connection_kwargs, "db": other_db})
    assert events_channel(str(user.id), other_db) != events_channel(str(user.id), redis_db(redis))
    try:
        async with chat_server(redis, keepalive=60) as client:
            stream = await open_stream(client, user)
            ours = await store_reply(user.id, TextReply("ours"))
            await WebChannel(neighbour).send(web_ref(user.id), TextReply("theirs"))
            await WebChannel(neighbour).show_activity(web_ref(user.id), "typing")
            with pytest.raises(TimeoutError):
                await next_event(stream, timeout=1.0)
            await WebChannel(redis).send(web_ref(user.id), TextReply("ours"))
            assert (await next_event(stream))["id"] == str(ours.id)
            stream.close()
    finally:
        await neighbour.aclose()


async def test_hub_reconnects_after_its_connection_is_killed(db: str, redis: ArqRedis) -> None:
    """CLIENT KILL on the hub's connection: it reconnects (still one connection), the stream re-reads what it
    missed at once (the keepalive is a minute away) and later pokes arrive again."""
    user = await new_user()
    async with chat_server(redis, keepalive=60) as client:
        stream = await open_stream(client, user)
        (killed,) = await pubsub_clients(redis)
        missed = await store_reply(user.id, TextReply("no poke for this one"))
        await redis.client_kill_filter(_id=killed["id"])
        assert (await next_event(stream, timeout=10))["id"] == str(missed.id)
        (replacement,) = await pubsub_clients(redis)
        assert replacement["id"] != killed["id"]
        later = await store_reply(user.id, TextReply("poked"))
        await WebChannel(redis).send(web_ref(user.id), TextReply("poked"))
        assert (await next_event(stream))["id"] == str(later.id)
        stream.close()


@contextlib.asynccontextmanager
async def private_redis(port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    """A throw-away redis-server on `port` (the shared test server must not be restarted)."""
    process = await asyncio.create_subprocess_exec(
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        probe = Redis(host="127.0.0.1", port=port)
        async with asyncio.timeout(10):
            while True:
                with contextlib.suppress(RedisError, OSError):
                    if await probe.ping():
                        break
                await asyncio.sleep(0.05)
        await probe.aclose()
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def test_streams_survive_a_redis_restart(db: str) -> None:
    """Redis stops and starts again: the open stream stays, the hub reconnects and resubscribes, the row stored
    meanwhile arrives by the re-read and new pokes arrive again."""
    port = free_port()
    user = await new_user()
    async with private_redis(port) as first_server:
        redis = await create_pool(RedisSettings(host="127.0.0.1", port=port))
        try:
            async with chat_server(redis, keepalive=60) as client:
                stream = await open_stream(client, user)
                assert stream.status == 200
                first_server.terminate()
                await first_server.wait()
                missed = await store_reply(user.id, TextReply("stored while Redis was away"))
                async with private_redis(port):
                    assert (await next_event(stream, timeout=20))["id"] == str(missed.id)
                    channel = events_channel(str(user.id), redis_db(redis))
                    assert dict(await redis.pubsub_numsub(channel)) == {channel.encode(): 1}
                    later = await store_reply(user.id, TextReply("after the restart"))
                    await WebChannel(redis).send(web_ref(user.id), TextReply("after the restart"))
                    assert (await next_event(stream))["id"] == str(later.id)
                    stream.close()
        finally:
            await redis.aclose()


async def test_stream_cap_holds_across_two_processes(db: str, redis: ArqRedis) -> None:
    """Two web processes sharing Redis admit at most CHAT_STREAMS_PER_USER streams of a user between them, even
    when they all open at once; more get 429 JSON; a closed stream frees its slot for either process."""
    user = await new_user()
    async with chat_server(redis, streams_per_user=3) as one, chat_server(redis, streams_per_user=3) as two:
        opened = await asyncio.gather(*(open_stream(one if i % 2 else two, user) for i in range(10)))
        admitted = [s for s in opened if s.status == 200]
        refused = [s for s in opened if s.status == 429]
        assert (len(admitted), len(refused)) == (3, 7)
        body = await refused[0].json()
        assert "at most 3" in body["error"]
        assert refused[0].headers["Content-Type"].startswith("application/json")
        assert await redis.zcard(slots_key(user.id)) == 3
        admitted[0].close()

        async def admitted_again() -> bool:
            response = await open_stream(two, user)
            if response.status == 200:
                admitted.append(response)
                return True
            response.close()
            return False

        await eventually(admitted_again, what="a freed slot")
        assert (await open_stream(one, user)).status == 429
        for stream in admitted:
            stream.close()


async def test_slots_of_a_crashed_process_expire(db: str, redis: ArqRedis) -> None:
    """Slots nobody refreshes (their process died) no longer count: a new stream is admitted."""
    user = await new_user()
    await redis.zadd(slots_key(user.id), {"dead-1": 1, "dead-2": 2})  # expired long ago
    async with chat_server(redis, streams_per_user=2) as client:
        stream = await open_stream(client, user)
        assert stream.status == 200
        assert await redis.zcard(slots_key(user.id)) == 1
        stream.close()


async def test_keepalive_refreshes_the_slot(db: str, redis: ArqRedis) -> None:
    """A live stream's keepalive moves its slot's expiry forward (and the slot outlives its first lease)."""
    user = await new_user()
    async with chat_server(redis, keepalive=1) as client:
        stream = await open_stream(client, user)
        ((_, first),) = await redis.zrange(slots_key(user.id), 0, -1, withscores=True)
        keepalives = 0
        async with asyncio.timeout(10):
            while keepalives < 2:
                if (await stream.content.readline()).startswith(b": keepalive"):
                    keepalives += 1
        ((_, later),) = await redis.zrange(slots_key(user.id), 0, -1, withscores=True)
        assert later > first
        stream.close()


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({}, "?after=abc"),
        ({}, "?after=-1"),
        ({}, "?after=" + "9" * 30),
        ({}, "?after=9223372036854775808"),
        ({"Last-Event-ID": "²"}, ""),
        ({"Last-Event-ID": "1e9"}, ""),
    ],
)
async def test_a_resume_point_that_is_not_an_id_is_400(
    db: str, redis: ArqRedis, headers: dict[str, str], query: str
) -> None:
    """Non-numeric, negative or huge `?after=` / `Last-Event-ID` answer 400 JSON, never a 500, and hold no slot."""
    user = await new_user()
    async with chat_server(redis) as client:
        response = await client.get(f"/chat/events{query}", headers={USER_HEADER: str(user.id), **headers})
        assert response.status == 400
        assert "message id" in (await response.json())["error"]
    assert await redis.zcard(slots_key(user.id)) == 0


async def test_largest_id_and_empty_resume_points_are_accepted(db: str, redis: ArqRedis) -> None:
    """The largest bigint and an empty `?after=` are valid resume points."""
    user = await new_user()
    async with chat_server(redis) as client:
        for query in ("?after=9223372036854775807", "?after="):
            response = await client.get(f"/chat/events{query}", headers={USER_HEADER: str(user.id)})
            assert response.status == 200
            response.close()


async def test_stream_without_redis_asks_the_browser_to_retry(db: str) -> None:
    """When Redis cannot be reached the stream answers 200 with a retry hint and ends (EventSource retries; an
    error status would make it give up for good)."""
    dead = ArqRedis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2)
    user = await new_user()
    try:
        async with chat_server(dead) as client:
            response = await open_stream(client, user)
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            assert await response.text() == "retry: 5000\n\n"
    finally:
        await dead.aclose()


async def test_hub_refuses_at_once_when_redis_is_unreachable() -> None:
    """Without Redis the hub raises a RedisError quickly (the stream then answers `retry:`), well before its
    subscribe timeout."""
    dead = ArqRedis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2)
    hub = EventHub(lambda: dead, subscribe_timeout=30)
    try:
        async with asyncio.timeout(5):
            with pytest.raises(RedisError):
                await hub.subscribe("1")
        assert not hub.channels
    finally:
        await hub.close()
        await dead.aclose()


async def test_a_slow_listener_holds_bounded_state() -> None:
    """A listener nobody reads keeps one re-read flag for any number of pokes and only the latest activities."""
    listener = Listener("ava:web:1", max_activities=4)
    for index in range(10_000):
        listener.offer(b"1")
        listener.offer(b'{"activity":"typing"}' if index % 2 else b'{"activity":"upload_photo"}')
    poked, kinds = await listener.next(0)
    assert poked is True
    assert kinds == ["upload_photo", "typing", "upload_photo", "typing"]
    assert await listener.next(0) == (False, [])
