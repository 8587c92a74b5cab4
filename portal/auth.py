"""Portal accounts: sign up and sign in with email + password, magic links from the chat, sign out (here or
everywhere).

Passwords must pass `portal.passwords.password_problem` and are hashed with argon2id, a bounded number at a
time (`Passwords`). Sign-in and sign-up are rate-limited per client address and per account
(`portal.throttle`); a refusal answers 429 with `Retry-After` before any hashing. Sessions are server-side
(`portal.sessions`) and every sign-in starts a fresh one.

A magic link (`/portal/sign-in/<token>`, minted when a chat message leaves: `portal.links`) works once, for
`SIGN_IN_LINK_TTL_SECONDS`, while the user's auth epoch holds. Opened while signed in as that same user it
just opens its page; while signed in as someone else it asks first (a POST with the CSRF token) and is only
used up once confirmed. Its destination, like the sign-in form's `?next=`, is always a path on this site.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import NoReturn

from aiohttp import web
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from core.models import ChannelIdentity, UsedToken, User
from portal.account import offered_plans, payments_live
from portal.csrf import require_csrf
from portal.deps import portal
from portal.errors import LinkUsed
from portal.links import SignInGrant, safe_next
from portal.pages import render
from portal.passwords import MAX_PASSWORD_CHARS, Passwords, password_problem
from portal.sessions import current_user, end_session
from portal.sessions import current_user_id as current_user_id  # re-exported: the composition root's session_user
from portal.sessions import start_session as start_session  # re-exported for callers that sign users in
from portal.throttle import SignInGuard

logger = logging.getLogger(__name__)

MAX_EMAIL_CHARS = 254
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CHANNEL_NAMES = {"telegram": "Telegram", "whatsapp": "WhatsApp"}

routes = web.RouteTableDef()


@dataclass(frozen=True, slots=True)
class AuthServices:
    """Password hashing and the sign-in limits of the portal."""

    passwords: Passwords
    guard: SignInGuard


AUTH = web.AppKey("ava_auth", AuthServices)


def _auth(request: web.Request) -> AuthServices:
    return request.app[AUTH]


def normalise_email(raw: object) -> str:
    """Trimmed, lower-cased email (empty when not a string)."""
    return raw.strip().lower() if isinstance(raw, str) else ""


def _text(raw: object) -> str:
    return raw if isinstance(raw, str) else ""


def _email_error(email: str) -> str | None:
    if not email:
        return "Enter your email address."
    if len(email) > MAX_EMAIL_CHARS or not _EMAIL.fullmatch(email):
        return "That does not look like an email address."
    return None


async def _too_many(request: web.Request, window: int, what: str) -> web.Response:
    """The 429 page: how long to wait, in `Retry-After` too (the window's length: the most it can take)."""
    minutes = max(1, window // 60)
    context = {"title": "Too many attempts", "message": f"Too many {what} attempts. Try again in {minutes} minutes."}
    response = await render(request, "error.html", context, status=429)
    response.headers["Retry-After"] = str(window)
    return response


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    """Landing page: what Ava is, the 18+ notice, the price from the plans; sign in, sign up, or go to the chat."""
    context = {"plans": await offered_plans(request), "payments_live": payments_live(request)}
    return await render(request, "index.html", context)


@routes.get("/signup")
async def signup_form(request: web.Request) -> web.Response:
    """The sign-up form (signed-in users go to the chat)."""
    if await current_user(request) is not None:
        raise web.HTTPSeeOther("/chat")
    return await render(request, "signup.html", {"email": ""})


@routes.post("/signup")
async def signup(request: web.Request) -> web.Response:
    """Create a web account (user + web identity), sign it in, go to the chat."""
    form = await request.post()
    await require_csrf(request, form)
    email, password = normalise_email(form.get("email")), _text(form.get("password"))
    auth = _auth(request)
    error = _email_error(email)
    if error is None:
        # Counted before the strength check and the email lookup: both cost, and the latter tells who has an account.
        if not await auth.guard.allow_sign_up(request):
            return await _too_many(request, auth.guard.limits.signup_window, "sign-up")
        error = await password_problem(password, email)
    if error:
        return await render(request, "signup.html", {"email": email, "error": error}, status=400)
    taken = "An account with this email already exists. Sign in instead."
    if await User.exists(email=email):
        return await render(request, "signup.html", {"email": email, "error": taken}, status=409)
    password_hash = await auth.passwords.hash(password)
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
    """The sign-in form; `?next=` (a local path) is where it leads. Signed-in users go there at once."""
    next_path = safe_next(request.query.get("next"))
    if await current_user(request) is not None:
        raise web.HTTPSeeOther(next_path)
    return await render(request, "signin.html", {"email": "", "next": next_path})


@routes.post("/signin")
async def signin(request: web.Request) -> web.Response:
    """Check the limits, then email and password; on success start a fresh session and go to `next`."""
    form = await request.post()
    await require_csrf(request, form)
    email, password = normalise_email(form.get("email")), _text(form.get("password"))
    next_path = safe_next(form.get("next"))
    auth = _auth(request)
    if not await auth.guard.allow_sign_in(request, email[: MAX_EMAIL_CHARS + 1]):
        return await _too_many(request, auth.guard.limits.signin_window, "sign-in")
    user = None
    if _email_error(email) is None and len(password) <= MAX_PASSWORD_CHARS:
        user = await User.get_or_none(email=email)
    if not await auth.passwords.verify(user.password_hash if user else None, password) or user is None:
        context = {"email": email, "next": next_path, "error": "Wrong email or password."}
        return await render(request, "signin.html", context, status=400)
    await auth.guard.signed_in(email)
    if user.password_hash and auth.passwords.needs_rehash(user.password_hash):
        user.password_hash = await auth.passwords.hash(password)
        await user.save(update_fields=["password_hash"])
    await start_session(request, user.id)
    raise web.HTTPSeeOther(next_path)


@routes.post("/signout")
async def signout(request: web.Request) -> web.Response:
    """End this session (its server-side data is deleted)."""
    await require_csrf(request, await request.post())
    await end_session(request)
    raise web.HTTPSeeOther("/")


@routes.post("/account/sign-out-everywhere")
async def sign_out_everywhere(request: web.Request) -> web.Response:
    """End every session of the account and void every link sent before (the auth epoch moves on)."""
    await require_csrf(request, await request.post())
    user = await current_user(request)
    if user is None:
        raise web.HTTPSeeOther("/signin")
    await User.filter(id=user.id).update(auth_epoch=F("auth_epoch") + 1)
    await end_session(request)
    logger.info("user %s signed out everywhere", user.id)
    raise web.HTTPSeeOther("/signin")


@routes.get("/portal/sign-in/{token}")
async def magic_sign_in(request: web.Request) -> web.Response:
    """Open a link from the chat: sign in and go on, or ask first when someone else is signed in here.

    A bad, old, revoked or used link raises `LinkInvalid` / `LinkExpired` / `LinkUsed` (403).
    """
    token = request.match_info["token"]
    grant = await portal(request).links.sign_in_grant(token)
    current = await current_user(request)
    if current is not None and current.id == grant.user_id:
        await _use(token)  # spent either way: it never signs anyone else in
        raise web.HTTPSeeOther(grant.next)
    if await UsedToken.exists(token_hash=_token_hash(token)):
        raise LinkUsed(f"sign-in link of user {grant.user_id} used again")
    if current is not None:  # not used up until confirmed
        context = {"current": await _describe(current), "action": request.path, "stay": "/chat"}
        return await render(request, "switch_account.html", context)
    await _sign_in_by_link(request, token, grant)


@routes.post("/portal/sign-in/{token}")
async def confirm_magic_sign_in(request: web.Request) -> web.Response:
    """The switch-account confirmation: sign out of the current account and in with the link."""
    await require_csrf(request, await request.post())
    token = request.match_info["token"]
    await _sign_in_by_link(request, token, await portal(request).links.sign_in_grant(token))


async def _sign_in_by_link(request: web.Request, token: str, grant: SignInGrant) -> NoReturn:
    if not await _use(token):  # one-time: a link opened once (or forwarded and opened) never works again
        raise LinkUsed(f"sign-in link of user {grant.user_id} used again")
    await start_session(request, grant.user_id)
    raise web.HTTPSeeOther(grant.next)


async def _use(token: str) -> bool:
    """Mark the token used (only its SHA-256 is stored); False when it already was."""
    try:
        await UsedToken.create(token_hash=_token_hash(token))
    except IntegrityError:
        return False
    return True


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _describe(user: User) -> str:
    """How the switch page names the signed-in account: its email, else the chat it came from."""
    if user.email:
        return user.email
    for identity in await ChannelIdentity.filter(user_id=user.id).order_by("id"):
        if identity.channel in _CHANNEL_NAMES:
            return f"the account of your {_CHANNEL_NAMES[identity.channel]} chat"
    return "another account"
