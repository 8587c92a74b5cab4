"""Live chat events of one web process: ONE Redis pub/sub connection fanned out to every open event stream.

`EventHub` holds a single pub/sub connection (opened lazily with the first stream, reconnecting with backoff
after any Redis error), subscribed to the channels of the users who have a stream open in this process: it
subscribes when a user's first local stream opens (and waits for Redis to confirm, so no poke published after
that is missed) and unsubscribes when the last one closes. Each stream gets a `Listener`: pokes coalesce into
one flag and activities into a short bounded queue, so a slow stream costs a constant amount of memory and never
loses the fact that it must re-read (it re-reads rows by id, so one flag stands for any number of pokes). After a
reconnect every listener is poked once: whatever was published while the connection was down is re-read.

`StreamSlots` caps the live streams of a user across every replica: a Redis sorted set per user whose members
are the streams and whose scores are their expiry times, refreshed by each stream's keepalive, so the slots of
a crashed process expire on their own. A stream over the cap is refused (the newest, not the oldest: the
refused one is the one asking, while evicting old tabs would have them reconnect and evict each other in turn).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, cast, get_args

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from core.ports import ActivityKind

logger = logging.getLogger(__name__)

_ACTIVITY_KINDS: tuple[str, ...] = get_args(ActivityKind)


def events_channel(chat_id: str, db: int = 0) -> str:
    """The Redis pub/sub channel poked when a web chat has new outbound rows (or Ava shows an activity).

    Pub/sub channels are shared by every database number of a Redis server, so the name carries the database
    number: two deployments (or test runs) on one server with different databases never hear each other.
    """
    return f"ava:web:{db}:{chat_id}"


def redis_db(redis: Redis) -> int:
    """The database number a Redis client works on (the namespace of its pub/sub channels)."""
    return int(redis.connection_pool.connection_kwargs.get("db") or 0)


def activity_payload(kind: ActivityKind) -> str:
    """The pub/sub text announcing an activity (a row poke is anything else, e.g. "1")."""
    return json.dumps({"activity": kind}, separators=(",", ":"))


def activity_of(data: object) -> ActivityKind | None:
    """The activity a pub/sub message announces, or None for a plain poke."""
    if isinstance(data, bytes):
        data = data.decode(errors="replace")
    if not isinstance(data, str) or not data.startswith("{"):
        return None
    try:
        value = json.loads(data)
    except ValueError:
        return None
    kind = value.get("activity") if isinstance(value, dict) else None
    return cast(ActivityKind, kind) if kind in _ACTIVITY_KINDS else None


class Listener:
    """One open stream's mailbox: a coalesced "re-read" flag and the latest few activities."""

    def __init__(self, channel: str, max_activities: int) -> None:
        self.channel = channel
        self._poked = False
        self._activities: deque[ActivityKind] = deque(maxlen=max_activities)
        self._wake = asyncio.Event()

    def offer(self, data: object) -> None:
        """A message published on the channel: an activity joins the queue (the oldest drops when full)."""
        kind = activity_of(data)
        if kind is None:
            self.poke()
            return
        self._activities.append(kind)
        self._wake.set()

    def poke(self) -> None:
        """Ask the stream to re-read its rows."""
        self._poked = True
        self._wake.set()

    async def next(self, within: float) -> tuple[bool, list[ActivityKind]]:
        """Wait up to `within` s; return whether rows must be re-read and the activities to show, in order."""
        if not self._wake.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), within)
        self._wake.clear()
        poked, self._poked = self._poked, False
        kinds = list(self._activities)
        self._activities.clear()
        return poked, kinds


class EventHub:
    """The process's one pub/sub connection and the listeners it fans out to."""

    def __init__(
        self,
        redis: Callable[[], Redis],
        *,
        max_activities: int = 8,
        subscribe_timeout: float = 5.0,
        backoff: tuple[float, float] = (0.2, 10.0),
        ping_interval: float = 30.0,
    ) -> None:
        self._redis = redis
        self._max_activities = max_activities
        self._subscribe_timeout = subscribe_timeout
        self._backoff = backoff
        self._ping_interval = ping_interval
        self._listeners: dict[str, set[Listener]] = {}
        #: Per channel: Redis confirmed the subscription on the current connection.
        self._ready: dict[str, asyncio.Event] = {}
        #: Per channel: SUBSCRIBE commands sent on the current connection and not yet confirmed.
        self._outstanding: dict[str, int] = {}
        #: Channels to poke once their subscription is confirmed again after a reconnect.
        self._reread: set[str] = set()
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        #: Set while the last connection attempt failed (Redis unreachable): new streams are refused at once.
        self._down = asyncio.Event()
        self._closed = False

    @property
    def channels(self) -> frozenset[str]:
        """The channels this process listens to (users with an open stream here)."""
        return frozenset(self._listeners)

    async def subscribe(self, chat_id: str) -> Listener:
        """A listener for the chat's events, once Redis confirmed the subscription; a RedisError when it cannot."""
        if self._closed:
            raise RedisConnectionError("the event hub is closed")
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="web-event-hub")
        channel = events_channel(chat_id, redis_db(self._redis()))
        listener = Listener(channel, self._max_activities)
        listeners = self._listeners.get(channel)
        if listeners is None:
            self._listeners[channel] = {listener}
            self._ready[channel] = asyncio.Event()
            await self._send_subscribe(channel)
        else:
            listeners.add(listener)
        ready = asyncio.ensure_future(self._ready[channel].wait())
        down = asyncio.ensure_future(self._down.wait())
        try:
            await asyncio.wait({ready, down}, timeout=self._subscribe_timeout, return_when=asyncio.FIRST_COMPLETED)
            if not self._ready[channel].is_set():
                raise RedisConnectionError("Redis did not confirm the subscription")
        except BaseException:  # refused, or cancelled while waiting: the listener must not stay behind
            await self.unsubscribe(listener)
            raise
        finally:
            ready.cancel()
            down.cancel()
        return listener

    async def unsubscribe(self, listener: Listener) -> None:
        """Forget `listener`; the channel is unsubscribed when it was the last one of its user here."""
        listeners = self._listeners.get(listener.channel)
        if listeners is None or listener not in listeners:
            return
        listeners.discard(listener)
        if listeners:
            return
        del self._listeners[listener.channel]
        del self._ready[listener.channel]
        self._reread.discard(listener.channel)
        if self._pubsub is not None:
            try:
                await self._pubsub.unsubscribe(listener.channel)
            except (RedisError, OSError) as exc:  # the loop notices the broken connection and reconnects
                logger.debug("event hub could not unsubscribe: %s", exc)

    async def close(self) -> None:
        """Stop the loop and drop the connection (application shutdown)."""
        self._closed = True
        self._down.set()  # streams still opening give up at once
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop()

    async def _send_subscribe(self, channel: str) -> None:
        if self._pubsub is None:  # (re)connecting: the loop subscribes every wanted channel when connected
            return
        self._outstanding[channel] = self._outstanding.get(channel, 0) + 1
        try:
            await self._pubsub.subscribe(channel)
        except (RedisError, OSError) as exc:
            logger.debug("event hub could not subscribe: %s", exc)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while not self._closed:
            try:
                pubsub = await self._connect()
            except Exception as exc:  # RedisError, OSError, or a surprise: never let the loop die
                failures += 1
                self._down.set()
                logger.warning("event hub cannot reach Redis (attempt %s): %s", failures, exc)
            else:
                connected_at = loop.time()
                try:
                    await self._pump(pubsub)
                except Exception as exc:
                    logger.warning("event hub lost its Redis connection, reconnecting: %s", exc)
                # A connection that lived a while starts the backoff afresh; one that keeps dying at once backs off.
                failures = 1 if loop.time() - connected_at > 30.0 else failures + 1
            await self._drop()
            if not self._closed:
                low, high = self._backoff
                delay = min(high, low * 2 ** (failures - 1))
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311  # jitter, not crypto

    async def _connect(self) -> PubSub:
        pubsub = self._redis().pubsub()
        try:
            # One connection, made before any concurrent SUBSCRIBE could race to make its own.
            await pubsub.connect()  # type: ignore[no-untyped-call]
        except BaseException:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise
        wanted = list(self._listeners)
        self._outstanding = dict.fromkeys(wanted, 1)
        self._pubsub = pubsub
        self._down.clear()
        if wanted:
            await pubsub.subscribe(*wanted)  # channels added meanwhile send their own SUBSCRIBE
        logger.info("event hub connected, listening to %s chats", len(wanted))
        return pubsub

    async def _pump(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        heard = pinged = loop.time()
        while not self._closed:
            message = await pubsub.get_message(timeout=1.0)
            now = loop.time()
            if message is not None:
                heard = now
                self._dispatch(message)
            elif now - heard > 2 * self._ping_interval:  # a half-open connection answers nothing, not even PING
                raise RedisConnectionError("no answer to PING")
            elif now - pinged >= self._ping_interval:
                await pubsub.ping()
                pinged = now

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind, raw = message.get("type"), message.get("channel")
        channel = raw.decode() if isinstance(raw, bytes) else str(raw)
        if kind == "message":
            for listener in tuple(self._listeners.get(channel, ())):
                listener.offer(message.get("data"))
        elif kind == "subscribe":
            left = self._outstanding.get(channel, 0) - 1
            if left > 0:
                self._outstanding[channel] = left
                return
            self._outstanding.pop(channel, None)
            if channel not in self._listeners:
                return
            self._ready[channel].set()
            if channel in self._reread or left < 0:  # re-subscribed after a reconnect: pokes may have been missed
                self._reread.discard(channel)
                for listener in self._listeners[channel]:
                    listener.poke()

    async def _drop(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        self._outstanding.clear()
        for channel, ready in self._ready.items():
            if ready.is_set():  # its streams were listening: they re-read once subscribed again
                self._reread.add(channel)
            ready.clear()
        if pubsub is not None:
            with contextlib.suppress(Exception):  # the connection may be half-gone already
                await pubsub.aclose()  # type: ignore[no-untyped-call]


#: Take (or keep) a slot: drop expired members, then add/refresh `member` if it holds one or one is free.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
"""


def slots_key(user_id: int) -> str:
    """The Redis sorted set of a user's live streams."""
    return f"ava:web:streams:{user_id}"


class StreamSlots:
    """At most `limit` live event streams per user across every replica (Redis clock, no replica clocks)."""

    def __init__(self, redis: Callable[[], Redis], *, limit: int, ttl: float) -> None:
        self._redis = redis
        self.limit = limit
        self._ttl_ms = max(1000, int(ttl * 1000))

    async def acquire(self, user_id: int) -> str | None:
        """A slot token for a new stream, or None when the user has `limit` live streams already."""
        token = uuid.uuid4().hex
        return token if await self.refresh(user_id, token) else None

    async def refresh(self, user_id: int, token: str) -> bool:
        """Extend the slot's life (keepalive); False when it expired and the user's slots are full meanwhile."""
        script = self._redis().register_script(_ACQUIRE)
        return bool(await script(keys=[slots_key(user_id)], args=[token, self.limit, self._ttl_ms]))

    async def release(self, user_id: int, token: str) -> None:
        """Give the slot back (the stream ended)."""
        await self._redis().zrem(slots_key(user_id), token)
