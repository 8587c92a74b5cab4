"""Portal accounts: sign up and sign in with email + password, sign in by magic link from the chat, sign out.

Passwords are hashed with argon2id (argon2-cffi's defaults) in a thread, off the event loop. Sessions are an
encrypted cookie (see `portal.setup`) holding only the user id and the CSRF token; every sign-in starts a
fresh session, so a token planted before sign-in is worthless after it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re

from aiohttp import web
from aiohttp_session import get_session, new_session
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core.models import ChannelIdentity, UsedToken, User
from portal.csrf import require_csrf
from portal.deps import SESSION_USER, portal
from portal.errors import LinkInvalid, LinkUsed
from portal.pages import render

logger = logging.getLogger(__name__)

MIN_PASSWORD_CHARS = 10
#: Bounds the hashing work one request can cause.
MAX_PASSWORD_CHARS = 1024
MAX_EMAIL_CHARS = 254
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

_hasher = PasswordHasher()
_dummy_hash: str | None = None

routes = web.RouteTableDef()


async def current_user_id(request: web.Request) -> int | None:
    """The signed-in user's id from the session, or None."""
    session = await get_session(request)
    value = session.get(SESSION_USER)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def start_session(request: web.Request, user_id: int) -> None:
    """Sign `user_id` in with a brand-new session (drops whatever the old one held)."""
    session = await new_session(request)
    session[SESSION_USER] = user_id


async def hash_password(password: str) -> str:
    """An argon2id hash of `password`."""
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether `password` matches `stored_hash`; without a hash, spend the same time and answer False."""
    global _dummy_hash
    if stored_hash is None:
        # Hash work even for unknown emails, so response time does not reveal which emails have accounts.
        if _dummy_hash is None:
            _dummy_hash = await hash_password("not-a-real-password")
        await asyncio.to_thread(_verify, _dummy_hash, password)
        return False
    return await asyncio.to_thread(_verify, stored_hash, password)


def _verify(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def normalise_email(raw: object) -> str:
    """Trimmed, lower-cased email (empty when not a string)."""
    return raw.strip().lower() if isinstance(raw, str) else ""


def _email_error(email: str) -> str | None:
    if not email:
        return "Enter your email address."
    if len(email) > MAX_EMAIL_CHARS or not _EMAIL.fullmatch(email):
        return "That does not look like an email address."
    return None


def _password_error(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_CHARS:
        return f"Choose a password of at least {MIN_PASSWORD_CHARS} characters."
    if len(password) > MAX_PASSWORD_CHARS:
        return f"Choose a password of at most {MAX_PASSWORD_CHARS} characters."
    return None


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    """Landing page: sign in, sign up, or go to the chat."""
    return await render(request, "index.html", {})


@routes.get("/signup")
async def signup_form(request: web.Request) -> web.Response:
    """The sign-up form (signed-in users go to the chat)."""
    if await current_user_id(request) is not None:
        raise web.HTTPSeeOther("/chat")
    return await render(request, "signup.html", {"email": ""})


@routes.post("/signup")
async def signup(request: web.Request) -> web.Response:
    """Create a web account (user + web identity), sign it in, go to the chat."""
    form = await request.post()
    await require_csrf(request, form)
    email = normalise_email(form.get("email"))
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    error = _email_error(email) or _password_error(password)
    if error:
        return await render(request, "signup.html", {"email": email, "error": error}, status=400)
    taken = "An account with this email already exists. Sign in instead."
    if await User.exists(email=email):
        return await render(request, "signup.html", {"email": email, "error": taken}, status=409)
    password_hash = await hash_password(password)
    try:
        async with in_transaction():
            user = await User.create(email=email, password_hash=password_hash)
            await ChannelIdentity.create(user=user, channel=portal(request).web_channel, external_user_id=str(user.id))
    except IntegrityError:  # a concurrent sign-up with the same email won
        return await render(request, "signup.html", {"email": email, "error": taken}, status=409)
    logger.info("web account created for user %s", user.id)
    await start_session(request, user.id)
    raise web.HTTPSeeOther("/chat")


@routes.get("/signin")
async def signin_form(request: web.Request) -> web.Response:
    """The sign-in form (signed-in users go to the chat)."""
    if await current_user_id(request) is not None:
        raise web.HTTPSeeOther("/chat")
    return await render(request, "signin.html", {"email": ""})


@routes.post("/signin")
async def signin(request: web.Request) -> web.Response:
    """Check email and password; on success start a session and go to the chat."""
    form = await request.post()
    await require_csrf(request, form)
    email = normalise_email(form.get("email"))
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    user = None
    if _email_error(email) is None and len(password) <= MAX_PASSWORD_CHARS:
        user = await User.get_or_none(email=email)
    if not await verify_password(user.password_hash if user else None, password) or user is None:
        context = {"email": email, "error": "Wrong email or password."}
        return await render(request, "signin.html", context, status=400)
    if user.password_hash and _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = await hash_password(password)
        await user.save(update_fields=["password_hash"])
    await start_session(request, user.id)
    raise web.HTTPSeeOther("/chat")


@routes.post("/signout")
async def signout(request: web.Request) -> web.Response:
    """End the session."""
    await require_csrf(request, await request.post())
    session = await get_session(request)
    session.invalidate()
    raise web.HTTPSeeOther("/")


@routes.get("/portal/sign-in/{token}")
async def magic_sign_in(request: web.Request) -> web.Response:
    """Sign in with a link sent in the chat, then go to the chat; a bad or old link raises `LinkInvalid` (403)."""
    token = request.match_info["token"]
    user_id = portal(request).links.verify_sign_in(token)
    if not await User.exists(id=user_id):
        raise LinkInvalid(f"sign-in link for missing user {user_id}")
    try:  # one-time: a link that was opened once (or forwarded and opened) never signs anyone in again
        await UsedToken.create(token_hash=hashlib.sha256(token.encode()).hexdigest())
    except IntegrityError:
        raise LinkUsed(f"sign-in link of user {user_id} used again") from None
    await start_session(request, user_id)
    raise web.HTTPSeeOther("/chat")
