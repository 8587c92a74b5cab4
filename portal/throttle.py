"""Rate limits of sign-in and sign-up (moving windows in Redis, shared by every web replica).

* Sign-in: at most `signin_per_ip` attempts per client address per window, and at most `signin_per_account`
  attempts on one email per window, counted before the password is checked and forgiven by a successful
  sign-in. Past the account limit even the right password is refused until the window has moved on, from
  any address: guessing a password stops after a handful of tries, however many addresses try.
* Sign-up: at most `signup_per_ip` attempts to create an account per client address per window.

Refusals happen before any password is hashed. The client address is the direct peer's, or, when the peer
is a trusted proxy (TRUSTED_PROXIES: Caddy in compose), the last X-Forwarded-For hop that is not itself a
trusted proxy (the proxies append, so hops left of that one are the client's own claims). IPv6 clients are
counted per /64, which one subscriber usually holds whole. Email keys are hashed: no address sits in Redis.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from aiohttp import web

from core.ports import RateLimiter

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Loopback and private ranges: a proxy in the same host or container network.
DEFAULT_TRUSTED_PROXIES: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


@dataclass(frozen=True, slots=True)
class SignInLimits:
    """The numbers (settings SIGNIN_PER_IP_PER_15MIN, SIGNIN_PER_ACCOUNT_PER_15MIN, SIGNUP_PER_IP_PER_HOUR)."""

    signin_per_ip: int = 30
    signin_per_account: int = 10
    signup_per_ip: int = 10
    signin_window: int = 15 * 60
    signup_window: int = 3600


def client_ip(remote: str | None, forwarded_for: Iterable[str], trusted: Sequence[IPNetwork]) -> str:
    """The client's address: `remote`, or behind trusted proxies the last untrusted X-Forwarded-For hop."""
    peer = _address(remote)
    if peer is None or not _within(peer, trusted):
        return str(peer) if peer is not None else (remote or "unknown")
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return hop[:64]  # garbage where the client's address should be: count it as that client
        if not _within(address, trusted):
            return str(address)
    first = _address(hops[0]) if hops else None
    return str(first or peer)  # every hop is a proxy: the innermost claim is all there is


def limit_key(address: str) -> str:
    """The rate-limit identity of an address: itself for IPv4, its /64 for IPv6."""
    parsed = _address(address)
    if parsed is None:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


class SignInGuard:
    """Applies the sign-in and sign-up limits to requests (no limiter: nothing is limited)."""

    def __init__(
        self,
        limiter: Callable[[], RateLimiter] | None,
        limits: SignInLimits | None = None,
        *,
        trusted_proxies: Sequence[IPNetwork] = DEFAULT_TRUSTED_PROXIES,
    ) -> None:
        self._limiter = limiter
        self.limits = limits or SignInLimits()
        self._trusted = tuple(trusted_proxies)

    def client(self, request: web.Request) -> str:
        """The rate-limit identity of the request's client."""
        forwarded = request.headers.getall("X-Forwarded-For", [])
        return limit_key(client_ip(request.remote, forwarded, self._trusted))

    async def allow_sign_in(self, request: web.Request, email: str) -> bool:
        """Count one sign-in attempt for the client and the account; False when either is over its limit."""
        if self._limiter is None:
            return True
        limiter, limits = self._limiter(), self.limits
        if not await limiter.hit(f"signin:ip:{self.client(request)}", limits.signin_per_ip, limits.signin_window):
            return False
        return await limiter.hit(_account_key(email), limits.signin_per_account, limits.signin_window)

    async def signed_in(self, email: str) -> None:
        """A correct password: the account's failed attempts are forgiven."""
        if self._limiter is not None:
            await self._limiter().reset(_account_key(email), self.limits.signin_per_account, self.limits.signin_window)

    async def allow_sign_up(self, request: web.Request) -> bool:
        """Count one sign-up attempt for the client; False when it is over its limit."""
        if self._limiter is None:
            return True
        key = f"signup:ip:{self.client(request)}"
        return await self._limiter().hit(key, self.limits.signup_per_ip, self.limits.signup_window)


def _account_key(email: str) -> str:
    return "signin:account:" + hashlib.sha256(email.encode()).hexdigest()[:32]


def _address(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not value:
        return None
    try:
        return ipaddress.ip_address(value.strip().removeprefix("[").split("]")[0].split("%")[0])
    except ValueError:
        return None


def _within(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Sequence[IPNetwork]) -> bool:
    return any(address.version == network.version and address in network for network in networks)
