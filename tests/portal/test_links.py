"""Portal links: secret-free placeholders, tokens minted at send time, epochs, expiry, tampering, safe `next`."""

from __future__ import annotations

import pytest

from core.ports import Links
from portal.errors import LinkExpired, LinkInvalid
from portal.links import PortalLinks, local_href, safe_next

BASE = "https://ava.example"


class Clock:
    """A settable clock for the signer."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Epochs:
    """Users' auth epochs as the database would answer them (a missing user: None)."""

    def __init__(self, **epochs: int) -> None:
        self.epochs = {int(k.removeprefix("u")): v for k, v in epochs.items()}

    async def __call__(self, user_id: int) -> int | None:
        return self.epochs.get(user_id)


def make_links(clock: Clock | None = None, secret: str = "s3cret-key", epochs: Epochs | None = None) -> PortalLinks:
    return PortalLinks(
        secret,
        BASE + "/",
        photo_link_ttl=3600,
        sign_in_ttl=900,
        clock=clock or Clock(),
        epochs=epochs or Epochs(u42=0, u7=0),
    )


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1] if "?t=" not in url else url.split("?t=", 1)[1]


def test_implements_links_port() -> None:
    """PortalLinks satisfies the core `Links` port."""
    assert isinstance(make_links(), Links)


def test_placeholders_carry_no_token() -> None:
    """What the engine gets (and message rows store) names the user and the page, and holds no signature."""
    links = make_links()
    assert links.sign_in_url(42) == "ava-link:/portal/sign-in/?u=42&next=/chat"
    assert links.subscribe_url(42) == "ava-link:/portal/sign-in/?u=42&next=/subscribe"
    assert links.gallery_url(42) == "ava-link:/portal/sign-in/?u=42&next=/gallery"
    assert links.photo_url(42, 5) == "ava-link:/photos/5?u=42"
    assert links.sign_in_url(42, next="https://evil.example/") == "ava-link:/portal/sign-in/?u=42&next=/chat"


async def test_for_sending_mints_a_sign_in_link_for_the_placeholder() -> None:
    """At send time a sign-in placeholder becomes a signed link granting that user, at their epoch, its page."""
    links = make_links(epochs=Epochs(u42=3))
    url = await links.for_sending(42, links.subscribe_url(42))
    assert url.startswith(f"{BASE}/portal/sign-in/")
    grant = links.verify_sign_in(token_of(url))
    assert (grant.user_id, grant.epoch, grant.next) == (42, 3, "/subscribe")
    assert url != await links.for_sending(42, links.subscribe_url(42))  # a nonce: every link is distinct


async def test_for_sending_mints_a_photo_link() -> None:
    """A photo placeholder becomes `/photos/<id>?t=<token>` verifying for that photo and user."""
    links = make_links(epochs=Epochs(u7=1))
    url = await links.for_sending(7, links.photo_url(7, 99))
    assert url.startswith(f"{BASE}/photos/99?t=")
    assert links.verify_photo(token_of(url), 99) == 7
    assert await links.photo_viewer(token_of(url), 99) == 7


async def test_for_sending_leaves_other_urls_and_refuses_foreign_placeholders() -> None:
    """Plain URLs pass unchanged; a placeholder of another user, or of an erased user, mints nothing."""
    links = make_links(epochs=Epochs(u42=0))
    assert await links.for_sending(42, "https://example.org/terms") == "https://example.org/terms"
    assert await links.for_sending(42, links.sign_in_url(7)) == f"{BASE}/signin"
    assert await links.for_sending(9, links.sign_in_url(9)) == f"{BASE}/signin"


async def test_links_of_an_older_epoch_are_refused() -> None:
    """After the user's epoch moves on (sign out everywhere) sign-in and photo links issued before are invalid."""
    epochs = Epochs(u42=0)
    links = make_links(epochs=epochs)
    sign_in = token_of(await links.for_sending(42, links.sign_in_url(42)))
    photo = token_of(await links.for_sending(42, links.photo_url(42, 5)))
    assert (await links.sign_in_grant(sign_in)).user_id == 42
    epochs.epochs[42] = 1
    with pytest.raises(LinkInvalid):
        await links.sign_in_grant(sign_in)
    with pytest.raises(LinkInvalid):
        await links.photo_viewer(photo, 5)
    del epochs.epochs[42]  # erased
    fresh = token_of(links.signed_photo_url(42, 5, 1))
    with pytest.raises(LinkInvalid):
        await links.photo_viewer(fresh, 5)


@pytest.mark.parametrize("kind", ["sign_in", "photo"])
def test_tampered_token_is_invalid(kind: str) -> None:
    """Changing any character of a token makes it invalid, not expired."""
    links = make_links()
    url = links.signed_sign_in_url(42, 0) if kind == "sign_in" else links.signed_photo_url(42, 1, 0)
    token = token_of(url)
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    with pytest.raises(LinkInvalid) as info:
        links.verify_sign_in(tampered) if kind == "sign_in" else links.verify_photo(tampered, 1)
    assert not isinstance(info.value, LinkExpired)
    assert info.value.http_status == 403


def test_garbage_and_foreign_tokens_are_invalid() -> None:
    """A token that is not a token at all, or signed with another secret key, is rejected."""
    with pytest.raises(LinkInvalid):
        make_links().verify_sign_in("not-a-token")
    token = token_of(make_links(secret="other").signed_sign_in_url(42, 0))
    with pytest.raises(LinkInvalid):
        make_links().verify_sign_in(token)


def test_sign_in_expires() -> None:
    """A sign-in token older than its lifetime raises LinkExpired; just inside it still works."""
    clock = Clock()
    links = make_links(clock)
    token = token_of(links.signed_sign_in_url(42, 0))
    clock.now += 900
    assert links.verify_sign_in(token).user_id == 42
    clock.now += 1
    with pytest.raises(LinkExpired):
        links.verify_sign_in(token)


def test_photo_expires_and_opens_only_its_photo() -> None:
    """A photo token older than its lifetime raises LinkExpired; it never opens another photo."""
    clock = Clock()
    links = make_links(clock)
    token = token_of(links.signed_photo_url(42, 5, 0))
    with pytest.raises(LinkInvalid):
        links.verify_photo(token, 6)
    clock.now += 3601
    with pytest.raises(LinkExpired):
        links.verify_photo(token, 5)


def test_purposes_are_not_interchangeable() -> None:
    """A sign-in token is no photo token and a photo token is no sign-in token."""
    links = make_links()
    sign_in = token_of(links.signed_sign_in_url(42, 0))
    photo = token_of(links.signed_photo_url(42, 5, 0))
    with pytest.raises(LinkInvalid):
        links.verify_photo(sign_in, 5)
    with pytest.raises(LinkInvalid):
        links.verify_sign_in(photo)


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/\t/evil.example",
        "chat",
        "",
        None,
        "/" + "a" * 600,
    ],
)
def test_next_never_leaves_the_site(value: object) -> None:
    """Anything but a plain local path (other hosts, schemes, tricks browsers read as hosts) becomes /chat."""
    assert safe_next(value) == "/chat"


def test_local_paths_are_kept_as_next() -> None:
    """A local path, with its query, is where the link leads."""
    assert safe_next("/subscribe") == "/subscribe"
    assert safe_next("/gallery?before=10") == "/gallery?before=10"
    links = make_links()
    assert local_href(links.sign_in_url(1, next="/gallery?before=10")) == "/gallery?before=10"


def test_web_chat_shows_placeholders_as_plain_local_links() -> None:
    """For a signed-in reader a sign-in placeholder is its page and a photo placeholder the photo route."""
    links = make_links()
    assert local_href(links.subscribe_url(1)) == "/subscribe"
    assert local_href(links.photo_url(1, 5)) == "/photos/5"
    assert local_href("https://example.org/") is None
