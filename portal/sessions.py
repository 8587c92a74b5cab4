"""Portal sessions: server-side in Redis, revocable, rotated at every sign-in, tied to the user's auth epoch.

The browser holds only a random session id (HttpOnly, SameSite=Lax; Secure and `__Host-` prefixed on HTTPS);
the data (user id, the user's `auth_epoch` at sign-in, the expiry, the CSRF token) lives in Redis under
`ava:session:<id>`, so a session can be ended from the server:

* sign-out deletes it; every sign-in starts a brand-new id and deletes the old one's data (a session id
  planted before sign-in, or a stolen pre-sign-in cookie, is worthless after it);
* "sign out everywhere" bumps `users.auth_epoch`, and erasure deletes the user: `current_user` then finds
  the session dead, ends it and answers None;
* a session ends `max_age` seconds after sign-in however active it is; a session without a user (a visitor
  with a CSRF token) lives a few hours.

`RedisSessionStorage` is shaped like `aiohttp_session.redis_storage.RedisStorage`, with three differences
the portal needs: it takes a getter (the application's Redis client is opened in a `cleanup_ctx`, after the
session middleware must exist), it deletes an ended or replaced session instead of saving it empty, and it
never writes back a session deleted meanwhile (`SET XX`).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from aiohttp import web
from aiohttp_session import STORAGE_KEY, AbstractStorage, Session, SessionData, get_session, new_session
from redis.asyncio import Redis

from core.models import User
from portal.csrf import csrf_token
from portal.deps import SESSION_USER
from portal.links import user_epoch

#: A portal session ends this long after sign-in unless the application says otherwise.
DEFAULT_MAX_AGE = 30 * 24 * 3600
#: How long a visitor's session (no user, a CSRF token for the sign-in forms) is kept.
ANONYMOUS_MAX_AGE = 4 * 3600
#: Session keys: the user's auth epoch at sign-in, and when the session ends (Unix seconds).
SESSION_EPOCH = "epoch"
SESSION_EXPIRES = "exp"
KEY_PREFIX = "ava:session:"
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """How long a signed-in session lasts."""

    max_age: int = DEFAULT_MAX_AGE


SESSION_POLICY = web.AppKey("ava_session_policy", SessionPolicy)


@dataclass(frozen=True, slots=True)
class _Known:
    user: User | None


_CURRENT = web.RequestKey("ava_current_user", _Known)


class RedisSessionStorage(AbstractStorage):
    """aiohttp-session storage keeping session data in Redis and only a random id in the cookie."""

    def __init__(
        self,
        redis: Callable[[], Redis],
        *,
        cookie_name: str,
        secure: bool,
        anonymous_max_age: int = ANONYMOUS_MAX_AGE,
    ) -> None:
        super().__init__(cookie_name=cookie_name, max_age=None, secure=secure, httponly=True, samesite="Lax")
        self._redis = redis
        self._secure = secure
        self._anonymous_max_age = anonymous_max_age

    async def load_session(self, request: web.Request) -> Session:
        """The session the cookie names, or a new one (unknown, expired or malformed ids are never adopted)."""
        session_id = self._cookie_id(request)
        raw = await self._redis().get(KEY_PREFIX + session_id) if session_id else None
        try:
            data = json.loads(raw) if raw is not None else None
        except ValueError:
            data = None
        if not isinstance(data, dict) or not data:
            return Session(None, data=None, new=True)
        return Session(session_id, data=cast(SessionData, data), new=False)

    async def save_session(self, request: web.Request, response: web.StreamResponse, session: Session) -> None:
        """Store the session; a new one replaces (deletes) the one the browser held, an empty one is deleted."""
        redis = self._redis()
        if session.identity is None:
            await self.forget(request)  # rotation: the browser's previous session is gone for good
            if session.empty:
                self._clear_cookie(response)
                return
            session_id = secrets.token_urlsafe(32)
            session.set_new_identity(session_id)
            ttl = self._ttl(session)
            await redis.set(KEY_PREFIX + session_id, self._encode(session), ex=ttl, nx=True)
            self.save_cookie(response, session_id, max_age=ttl)
            return
        key = KEY_PREFIX + str(session.identity)
        if session.empty:
            await redis.delete(key)
            self._clear_cookie(response)
            return
        ttl = self._ttl(session)
        await redis.set(key, self._encode(session), ex=ttl, xx=True)  # never revives a session deleted meanwhile
        self.save_cookie(response, str(session.identity), max_age=ttl)

    async def forget(self, request: web.Request) -> None:
        """Delete the server-side data of the session the request's cookie names."""
        session_id = self._cookie_id(request)
        if session_id:
            await self._redis().delete(KEY_PREFIX + session_id)

    def _cookie_id(self, request: web.Request) -> str | None:
        value = self.load_cookie(request)
        return value if value and _SESSION_ID.fullmatch(value) else None

    def _ttl(self, session: Session) -> int:
        expires = session.get(SESSION_EXPIRES)
        if isinstance(expires, int):
            return max(1, expires - int(time.time()))
        return self._anonymous_max_age

    def _encode(self, session: Session) -> str:
        return json.dumps(self._get_session_data(session))

    def _clear_cookie(self, response: web.StreamResponse) -> None:
        # A `__Host-` cookie is only replaced by a Set-Cookie with the same attributes (Secure, Path=/).
        response.del_cookie(self.cookie_name, path="/", secure=self._secure, httponly=True, samesite="Lax")


#: Visitor choices that survive signing in (the browser's 18+ confirmation): never identity or CSRF state.
CARRIED_OVER = ("adult_ok",)


async def start_session(request: web.Request, user_id: int) -> Session:
    """Sign `user_id` in with a brand-new session id (the old session's server-side data is deleted)."""
    epoch = await user_epoch(user_id)
    policy = request.app.get(SESSION_POLICY) or SessionPolicy()
    old = await get_session(request)
    carried = {key: old[key] for key in CARRIED_OVER if key in old}
    await _forget(request)
    session = await new_session(request)
    session.update(carried)
    session[SESSION_USER] = user_id
    session[SESSION_EPOCH] = epoch if epoch is not None else 0
    session[SESSION_EXPIRES] = int(time.time()) + policy.max_age
    csrf_token(session)  # a fresh CSRF token: one planted before sign-in is worthless after it
    request.pop(_CURRENT, None)
    return session


async def end_session(request: web.Request) -> None:
    """Sign out: delete the session's server-side data and the cookie."""
    await _forget(request)
    session = await new_session(request)
    session.changed()  # saved empty: the cookie is removed
    request[_CURRENT] = _Known(None)


async def current_user(request: web.Request) -> User | None:
    """The signed-in user; a dead session (user erased, signed out everywhere, too old) is ended: None."""
    known = request.get(_CURRENT)
    if isinstance(known, _Known):
        return known.user
    session = await get_session(request)
    user_id = session.get(SESSION_USER)
    user = None
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user = await User.get_or_none(id=user_id)
        expires = session.get(SESSION_EXPIRES)
        alive = isinstance(expires, int) and expires > time.time()
        if user is None or session.get(SESSION_EPOCH) != user.auth_epoch or not alive:
            await end_session(request)
            user = None
    request[_CURRENT] = _Known(user)
    return user


async def current_user_id(request: web.Request) -> int | None:
    """The signed-in user's id, or None (see `current_user`)."""
    user = await current_user(request)
    return user.id if user is not None else None


async def _forget(request: web.Request) -> None:
    storage = request.get(STORAGE_KEY)
    if isinstance(storage, RedisSessionStorage):
        await storage.forget(request)
