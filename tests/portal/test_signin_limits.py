"""Sign-in and sign-up rate limits (real Redis) and the bound on concurrent password hashing."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher
from arq.connections import ArqRedis

from ava_bot.app import create_app
from ava_bot.ratelimits import RedisRateLimiter
from core.models import User
from portal.passwords import Passwords
from portal.throttle import DEFAULT_TRUSTED_PROXIES, SignInLimits, client_ip, limit_key
from tests.conftest import TEST_REDIS_URL
from tests.fakes.entitlements import Gate
from tests.portal.conftest import PASSWORD, Portal, page_token, serve_portal

#: argon2id with the smallest parameters: these tests are about counting, not cost.
CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


class CountingHasher(PasswordHasher):
    """argon2's hasher, counting how many hashes run at the same moment (cheap parameters: the test is about
    concurrency, not cost)."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self._lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.calls = 0

    def _enter(self) -> None:
        with self._lock:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)

    def _leave(self) -> None:
        with self._lock:
            self.running -= 1

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self._enter()
        try:
            time.sleep(0.02)  # long enough for hashes to overlap if nothing bounds them
            return super().hash(password, salt=salt)
        finally:
            self._leave()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self._enter()
        try:
            time.sleep(0.02)
            return super().verify(hash, password)
        finally:
            self._leave()


@pytest.fixture
def hasher() -> CountingHasher:
    return CountingHasher()


@pytest.fixture
async def limited(db: str, redis: ArqRedis, hasher: CountingHasher) -> AsyncIterator[Portal]:
    """The portal with the Redis rate limiter (small limits) and a counting hasher, 2 hashes at a time."""
    limiter = RedisRateLimiter.from_url(TEST_REDIS_URL)
    limits = SignInLimits(signin_per_ip=1000, signin_per_account=10, signup_per_ip=3)
    passwords = Passwords(concurrency=2, hasher=hasher)
    async with serve_portal(redis, limiter=lambda: limiter, limits=limits, passwords=passwords) as portal:
        yield portal


async def sign_in(portal: Portal, email: str, password: str, ip: str = "203.0.113.7") -> ClientResponse:
    """Post the sign-in form from client address `ip` (the test server's peer is a trusted loopback proxy)."""
    token = await page_token(portal.client, "/signin")
    return await portal.client.post(
        "/signin",
        data={"email": email, "password": password, "csrf_token": token},
        headers={"X-Forwarded-For": ip},
        allow_redirects=False,
    )


async def test_sixty_wrong_passwords_then_the_right_one_is_refused(limited: Portal, hasher: CountingHasher) -> None:
    """After the account's limit of failed attempts even the right password is refused (429), without hashing."""
    await User.create(email="dora@example.com", password_hash=CHEAP.hash(PASSWORD))
    statuses = [
        (await sign_in(limited, "dora@example.com", f"wrong guess {i}", ip=f"198.51.100.{i}")).status for i in range(60)
    ]
    assert statuses[:10] == [400] * 10 and set(statuses[10:]) == {429}
    hashed = hasher.calls
    assert hashed == 10
    right = await sign_in(limited, "dora@example.com", PASSWORD, ip="192.0.2.200")
    assert right.status == 429
    assert int(right.headers["Retry-After"]) == 900
    assert "Too many sign-in attempts" in await right.text()
    assert hasher.calls == hashed  # refused before any hash
    assert (await limited.client.get("/chat", allow_redirects=False)).status == 303


async def test_a_successful_sign_in_forgives_earlier_failures(limited: Portal) -> None:
    """A few typos and then the right password sign in, and the account's counter starts again."""
    await User.create(email="ed@example.com", password_hash=CHEAP.hash(PASSWORD))
    for i in range(9):
        assert (await sign_in(limited, "ed@example.com", f"typo {i}")).status == 400
    assert (await sign_in(limited, "ed@example.com", PASSWORD)).status == 303
    limited.forget_cookies()
    for i in range(9):
        assert (await sign_in(limited, "ed@example.com", f"typo again {i}")).status == 400
    assert (await sign_in(limited, "ed@example.com", PASSWORD)).status == 303


async def test_per_ip_limit_refuses_one_address_only(db: str, redis: ArqRedis) -> None:
    """Past SIGNIN_PER_IP one client address is refused for every account; another address is not."""
    limiter = RedisRateLimiter.from_url(TEST_REDIS_URL)
    limits = SignInLimits(signin_per_ip=5, signin_per_account=100)
    passwords = Passwords(hasher=CHEAP)
    async with serve_portal(redis, limiter=lambda: limiter, limits=limits, passwords=passwords) as portal:
        statuses = [
            (await sign_in(portal, f"u{i}@example.com", "whatever pw", ip="203.0.113.9")).status for i in range(7)
        ]
        assert statuses == [400] * 5 + [429] * 2
        assert (await sign_in(portal, "u9@example.com", "whatever pw", ip="203.0.113.10")).status == 400


async def test_sign_up_is_limited_per_address(limited: Portal) -> None:
    """Past SIGNUP_PER_IP_PER_HOUR one address creates no more accounts (429, Retry-After one hour)."""
    statuses = []
    for i in range(5):
        token = await page_token(limited.client, "/signup")
        response = await limited.client.post(
            "/signup",
            data={"email": f"new{i}@example.com", "password": PASSWORD, "csrf_token": token},
            headers={"X-Forwarded-For": "203.0.113.50"},
            allow_redirects=False,
        )
        statuses.append(response.status)
        if response.status == 429:
            assert response.headers["Retry-After"] == "3600"
        limited.forget_cookies()
    assert statuses == [303, 303, 303, 429, 429]
    assert await User.filter(email__startswith="new").count() == 3


async def test_parallel_sign_ins_never_hash_more_than_the_bound(limited: Portal, hasher: CountingHasher) -> None:
    """48 sign-ins at once all get an answer, and at most PASSWORD_HASH_CONCURRENCY (2) hashes ever run together."""
    await User.create(email="fay@example.com", password_hash=CHEAP.hash(PASSWORD))
    clients = [TestClient(limited.client.server) for _ in range(48)]
    try:
        tokens = [await page_token(client, "/signin") for client in clients]

        async def attempt(client: TestClient, token: str, i: int) -> int:
            email = "fay@example.com" if i % 8 == 0 else f"nobody{i}@example.com"
            response = await client.post(
                "/signin",
                data={"email": email, "password": PASSWORD, "csrf_token": token},
                headers={"X-Forwarded-For": f"198.51.100.{i}"},
                allow_redirects=False,
            )
            return response.status

        statuses = await asyncio.gather(
            *(attempt(c, t, i) for i, (c, t) in enumerate(zip(clients, tokens, strict=True)))
        )
    finally:
        for client in clients:
            await client.close()
    assert sorted(set(statuses)) == [303, 400] and statuses.count(303) == 6
    assert hasher.calls >= 48
    assert hasher.most == 2


async def test_create_app_applies_the_configured_limits(db: str, redis: ArqRedis, make_settings: Any) -> None:
    """The application wires SIGNIN_PER_ACCOUNT_PER_15MIN: the third failed attempt on one account is refused."""
    app = await create_app(
        make_settings(signin_per_account_per_15min=2), redis=redis, own_database=False, entitlements=Gate(open_=True)
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        statuses = []
        for _ in range(3):
            token = await page_token(client, "/signin")
            response = await client.post(
                "/signin", data={"email": "gil@example.com", "password": "nope nope nope", "csrf_token": token}
            )
            statuses.append(response.status)
        assert statuses == [400, 400, 429]
    finally:
        await client.close()


TRUSTED = DEFAULT_TRUSTED_PROXIES


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        ("203.0.113.5", ["198.51.100.1"], "203.0.113.5"),  # an untrusted peer's header is ignored
        ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),  # behind the proxy: the hop it appended
        ("10.0.0.2", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),  # the client's own claim on the left is ignored
        ("10.0.0.2", ["198.51.100.1, 172.16.0.9"], "198.51.100.1"),  # proxies in a chain are skipped
        ("127.0.0.1", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),  # several headers read as one list
        ("10.0.0.2", [], "10.0.0.2"),  # no header: the peer itself
        ("10.0.0.2", ["10.0.0.3"], "10.0.0.3"),  # only proxies: the innermost claim
    ],
)
def test_client_address(remote: str, forwarded: list[str], expected: str) -> None:
    """X-Forwarded-For is believed only from a trusted proxy, and only its last untrusted hop."""
    assert client_ip(remote, forwarded, TRUSTED) == expected


def test_trusted_proxies_are_configurable() -> None:
    """With TRUSTED_PROXIES narrowed to one address, a private peer that is not it is not believed."""
    only = [ipaddress.ip_network("10.0.0.2/32")]
    assert client_ip("10.0.0.3", ["198.51.100.1"], only) == "10.0.0.3"
    assert client_ip("10.0.0.2", ["198.51.100.1"], only) == "198.51.100.1"


def test_ipv6_clients_count_per_64() -> None:
    """Two addresses of one IPv6 /64 share a limit; IPv4-mapped addresses count as IPv4."""
    assert limit_key("2001:db8:1:2::1") == limit_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert limit_key("::ffff:198.51.100.1") == "198.51.100.1"
