"""Signed portal links: sign-in and photo tokens, tampering, expiry, purpose separation."""

from __future__ import annotations

import pytest

from core.ports import Links
from portal.errors import LinkExpired, LinkInvalid
from portal.links import PortalLinks

BASE = "https://ava.example"


class Clock:
    """A settable clock for the signer."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_links(clock: Clock | None = None, secret: str = "s3cret-key") -> PortalLinks:
    return PortalLinks(secret, BASE + "/", photo_link_ttl=3600, sign_in_ttl=900, clock=clock or Clock())


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1] if "?t=" not in url else url.split("?t=", 1)[1]


def test_implements_links_port() -> None:
    """PortalLinks satisfies the core `Links` port."""
    assert isinstance(make_links(), Links)


def test_sign_in_round_trip() -> None:
    """A sign-in URL carries a token that verifies back to the user id."""
    links = make_links()
    url = links.sign_in_url(42)
    assert url.startswith(f"{BASE}/portal/sign-in/")
    assert links.verify_sign_in(token_of(url)) == 42


def test_photo_round_trip() -> None:
    """A photo URL names the photo and its token verifies for that photo."""
    links = make_links()
    url = links.photo_url(7, 99)
    assert url.startswith(f"{BASE}/photos/99?t=")
    assert links.verify_photo(token_of(url), 99) == 7


def test_plain_urls() -> None:
    """Subscribe and gallery URLs are plain portal pages."""
    links = make_links()
    assert links.subscribe_url(1) == f"{BASE}/subscribe"
    assert links.gallery_url(1) == f"{BASE}/gallery"


@pytest.mark.parametrize("kind", ["sign_in", "photo"])
def test_tampered_token_is_invalid(kind: str) -> None:
    """Changing any character of a token makes it invalid, not expired."""
    links = make_links()
    token = token_of(links.sign_in_url(42) if kind == "sign_in" else links.photo_url(42, 1))
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    with pytest.raises(LinkInvalid) as info:
        links.verify_sign_in(tampered) if kind == "sign_in" else links.verify_photo(tampered, 1)
    assert not isinstance(info.value, LinkExpired)
    assert info.value.http_status == 403


def test_garbage_token_is_invalid() -> None:
    """A token that is not a token at all is invalid."""
    with pytest.raises(LinkInvalid):
        make_links().verify_sign_in("not-a-token")


def test_other_secret_is_invalid() -> None:
    """A token signed with another secret key is rejected."""
    token = token_of(make_links(secret="other").sign_in_url(42))
    with pytest.raises(LinkInvalid):
        make_links().verify_sign_in(token)


def test_sign_in_expires() -> None:
    """A sign-in token older than its lifetime raises LinkExpired; just inside it still works."""
    clock = Clock()
    links = make_links(clock)
    token = token_of(links.sign_in_url(42))
    clock.now += 900
    assert links.verify_sign_in(token) == 42
    clock.now += 1
    with pytest.raises(LinkExpired):
        links.verify_sign_in(token)


def test_photo_expires() -> None:
    """A photo token older than its lifetime raises LinkExpired."""
    clock = Clock()
    links = make_links(clock)
    token = token_of(links.photo_url(42, 5))
    clock.now += 3601
    with pytest.raises(LinkExpired):
        links.verify_photo(token, 5)


def test_photo_token_for_other_photo_is_invalid() -> None:
    """A photo token only opens the photo it was issued for."""
    links = make_links()
    token = token_of(links.photo_url(42, 5))
    with pytest.raises(LinkInvalid):
        links.verify_photo(token, 6)


def test_purposes_are_not_interchangeable() -> None:
    """A sign-in token is no photo token and a photo token is no sign-in token."""
    links = make_links()
    sign_in = token_of(links.sign_in_url(42))
    photo = token_of(links.photo_url(42, 5))
    with pytest.raises(LinkInvalid):
        links.verify_photo(sign_in, 5)
    with pytest.raises(LinkInvalid):
        links.verify_sign_in(photo)
