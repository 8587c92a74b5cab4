"""Portal accounts: sign-up, sign-in, sign-out, magic links, sessions and CSRF on the forms."""

from __future__ import annotations

import time

from argon2 import PasswordHasher

from core.models import ChannelIdentity, User
from portal.links import PortalLinks
from portal.passwords import Passwords
from tests.portal.conftest import BASE_URL, PASSWORD, SECRET, Portal, magic_path, page_token, sign_up

#: What a browser sends when it loads a page.
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


async def hash_password(password: str) -> str:
    """An argon2id hash as the portal stores it."""
    return await Passwords().hash(password)


async def test_sign_up_starts_a_session_and_opens_the_chat(portal: Portal) -> None:
    """Signing up creates the user with a web identity and signs the browser in: /chat answers 200."""
    user_id = await sign_up(portal.client)
    identity = await ChannelIdentity.get(user_id=user_id)
    assert (identity.channel, identity.external_user_id) == ("web", str(user_id))
    response = await portal.client.get("/chat")
    assert response.status == 200
    assert 'action="/chat/messages"' in await response.text()  # the chat page's message box


async def test_chat_requires_a_session(portal: Portal) -> None:
    """Without a session /chat redirects to the sign-in page."""
    response = await portal.client.get("/chat", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/signin"


async def test_password_is_stored_as_an_argon2_hash(portal: Portal) -> None:
    """The stored password is an argon2id hash that verifies, never the plaintext."""
    user_id = await sign_up(portal.client)
    user = await User.get(id=user_id)
    assert user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert PasswordHasher().verify(user.password_hash, PASSWORD)


async def test_email_is_normalised(portal: Portal) -> None:
    """Emails are stored trimmed and lower-cased."""
    user_id = await sign_up(portal.client, email="  Alice@Example.COM ")
    assert (await User.get(id=user_id)).email == "alice@example.com"


async def test_duplicate_email_is_refused_with_a_clear_error(portal: Portal) -> None:
    """Signing up again with the same email (any case) re-renders the form with an error; no second user."""
    await sign_up(portal.client)
    portal.forget_cookies()
    token = await page_token(portal.client, "/signup")
    response = await portal.client.post(
        "/signup", data={"email": "ALICE@example.com", "password": PASSWORD, "csrf_token": token}
    )
    assert response.status == 409
    assert "already exists" in await response.text()
    assert await User.filter(email="alice@example.com").count() == 1


async def test_short_password_is_refused(portal: Portal) -> None:
    """A password under 10 characters re-renders the form with an error and creates nobody."""
    token = await page_token(portal.client, "/signup")
    response = await portal.client.post(
        "/signup", data={"email": "bob@example.com", "password": "short", "csrf_token": token}
    )
    assert response.status == 400
    assert "at least 10 characters" in await response.text()
    assert not await User.exists(email="bob@example.com")


async def test_sign_in_with_the_right_password(portal: Portal) -> None:
    """Email (any case) and the right password sign in and lead to the chat."""
    await User.create(email="carol@example.com", password_hash=await hash_password(PASSWORD))
    token = await page_token(portal.client, "/signin")
    response = await portal.client.post(
        "/signin",
        data={"email": "Carol@Example.com", "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
    )
    assert response.status == 303
    assert (await portal.client.get("/chat", allow_redirects=False)).status == 200


async def test_wrong_password_shows_an_error_and_starts_no_session(portal: Portal) -> None:
    """A wrong password re-renders the form with an error, and the browser stays signed out."""
    await User.create(email="carol@example.com", password_hash=await hash_password(PASSWORD))
    token = await page_token(portal.client, "/signin")
    response = await portal.client.post(
        "/signin", data={"email": "carol@example.com", "password": "wrong password!", "csrf_token": token}
    )
    assert response.status == 400
    assert "Wrong email or password." in await response.text()
    assert (await portal.client.get("/chat", allow_redirects=False)).status == 303


async def test_unknown_email_gets_the_same_error(portal: Portal) -> None:
    """An email without an account gets the same answer as a wrong password."""
    token = await page_token(portal.client, "/signin")
    response = await portal.client.post(
        "/signin", data={"email": "nobody@example.com", "password": PASSWORD, "csrf_token": token}
    )
    assert response.status == 400
    assert "Wrong email or password." in await response.text()


async def test_sign_out_ends_the_session(portal: Portal) -> None:
    """After signing out, /chat redirects to the sign-in page again."""
    await sign_up(portal.client)
    token = await page_token(portal.client, "/chat")
    response = await portal.client.post("/signout", data={"csrf_token": token}, allow_redirects=False)
    assert response.status == 303
    assert (await portal.client.get("/chat", allow_redirects=False)).status == 303


async def test_magic_link_signs_in(portal: Portal) -> None:
    """A sign-in link from the chat starts a session for its user and redirects to /chat."""
    user = await User.create()
    path = await magic_path(portal.links, user.id)
    response = await portal.client.get(path, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/chat"
    assert (await portal.client.get("/chat", allow_redirects=False)).status == 200


def _tampered(path: str) -> str:
    return path[:-3] + ("xyz" if not path.endswith("xyz") else "abc")


async def test_tampered_magic_link_is_forbidden(portal: Portal) -> None:
    """A tampered sign-in link opened in a browser answers a 403 error page with the security headers."""
    user = await User.create()
    path = await magic_path(portal.links, user.id)
    response = await portal.client.get(_tampered(path), headers={"Accept": BROWSER_ACCEPT}, allow_redirects=False)
    assert response.status == 403
    assert response.content_type == "text/html"
    assert "script-src 'nonce-" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    html = await response.text()
    assert "<h1>Link not valid</h1>" in html and "This link is not valid." in html
    assert (await portal.client.get("/chat", allow_redirects=False)).status == 303


async def test_expired_magic_link_page_says_to_ask_for_a_new_one(portal: Portal) -> None:
    """An expired sign-in link answers a 403 page saying to ask in the chat for a new link."""
    user = await User.create()
    now = time.time()
    old_links = PortalLinks(SECRET, BASE_URL, clock=lambda: now - 3600)
    path = old_links.signed_sign_in_url(user.id, user.auth_epoch).removeprefix(BASE_URL)
    response = await portal.client.get(path, headers={"Accept": BROWSER_ACCEPT}, allow_redirects=False)
    assert response.status == 403
    html = await response.text()
    assert "<h1>Link expired</h1>" in html and "Ask in the chat for a new one." in html


async def test_bad_magic_link_answers_json_to_a_json_client(portal: Portal) -> None:
    """The same refused sign-in link requested with `Accept: application/json` answers a JSON 403."""
    user = await User.create()
    path = await magic_path(portal.links, user.id)
    response = await portal.client.get(_tampered(path), headers={"Accept": "application/json"}, allow_redirects=False)
    assert response.status == 403
    assert await response.json() == {"error": "This link is not valid."}


async def test_magic_link_for_a_deleted_user_is_refused(portal: Portal) -> None:
    """A genuine sign-in link whose user no longer exists answers 403 and signs nobody in."""
    user = await User.create()
    path = await magic_path(portal.links, user.id)
    await user.delete()
    response = await portal.client.get(path, headers={"Accept": BROWSER_ACCEPT}, allow_redirects=False)
    assert response.status == 403
    assert "This link is not valid." in await response.text()
    assert (await portal.client.get("/chat", allow_redirects=False)).status == 303


async def test_sign_in_form_without_csrf_token_is_refused(portal: Portal) -> None:
    """A sign-in POST without the session's CSRF token is refused (no login CSRF)."""
    await User.create(email="carol@example.com", password_hash=await hash_password(PASSWORD))
    await page_token(portal.client, "/signin")
    response = await portal.client.post(
        "/signin", data={"email": "carol@example.com", "password": PASSWORD}, allow_redirects=False
    )
    assert response.status == 403
    assert (await portal.client.get("/chat", allow_redirects=False)).status == 303


async def test_sign_in_replaces_the_session(portal: Portal) -> None:
    """Signing in starts a new session: the CSRF token from before sign-in no longer works."""
    before = await page_token(portal.client, "/signup")
    await portal.client.post(
        "/signup", data={"email": "dan@example.com", "password": PASSWORD, "csrf_token": before}, allow_redirects=False
    )
    response = await portal.client.post("/signout", data={"csrf_token": before}, allow_redirects=False)
    assert response.status == 403


async def test_pages_send_security_headers(portal: Portal) -> None:
    """Pages carry a nonce-based CSP, no-referrer, no framing and no caching."""
    response = await portal.client.get("/")
    assert "script-src 'nonce-" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


async def test_a_magic_link_signs_in_once_only(portal: Portal) -> None:
    """Opening a chat's sign-in link again (or a forwarded copy) is refused; each /portal link is distinct."""
    user = await User.create()
    path = await magic_path(portal.links, user.id)
    assert path != await magic_path(portal.links, user.id)  # a nonce: two links from the same second differ
    first = await portal.client.get(path, allow_redirects=False)
    assert first.status == 303 and first.headers["Location"] == "/chat"
    portal.forget_cookies()
    again = await portal.client.get(path, headers={"Accept": "application/json"}, allow_redirects=False)
    assert again.status == 403 and "already used" in (await again.json())["error"]
