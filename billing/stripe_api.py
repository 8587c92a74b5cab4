"""The async Stripe client of Ava: the official `stripe` library on aiohttp, base address from STRIPE_API_BASE.

Only the calls billing makes: create (and expire) a Checkout Session, create a Customer Portal session, retrieve,
update and cancel a subscription. Every failure becomes a `StripeUnavailable` (502 on a page) whose log line carries
Stripe's error type and code, never the key. Answers come back as plain dicts (Stripe's JSON), so the state
code works on the same shape as webhook payloads. Call these only with no database transaction open.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import stripe

from billing.errors import StripeObjectMissing, StripeUnavailable

if TYPE_CHECKING:
    from stripe.params import SubscriptionUpdateParams
    from stripe.params.billing_portal import SessionCreateParams as PortalSessionCreateParams
    from stripe.params.checkout import SessionCreateParams

logger = logging.getLogger(__name__)

#: Seconds one Stripe request may take (the library's default is 80).
DEFAULT_TIMEOUT = 20.0
#: Retries of a failed request (connection errors, 409, 5xx); POSTs carry an idempotency key, so retries are safe.
DEFAULT_RETRIES = 2


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    """A created Checkout Session: its id, the URL to send the browser to, and when Stripe stops taking payments for
    it (epoch seconds)."""

    id: str
    url: str
    expires_at: int


class StripeApi:
    """The few Stripe calls billing makes, through `stripe.StripeClient` with `stripe.AIOHTTPClient`."""

    def __init__(
        self,
        secret_key: str,
        *,
        api_base: str,
        timeout: float = DEFAULT_TIMEOUT,
        max_network_retries: int = DEFAULT_RETRIES,
    ) -> None:
        self._http = stripe.AIOHTTPClient(timeout=aiohttp.ClientTimeout(total=timeout))
        self._client = stripe.StripeClient(
            secret_key,
            http_client=self._http,
            base_addresses={"api": api_base.rstrip("/")},
            max_network_retries=max_network_retries,
        )

    async def create_checkout_session(self, params: Mapping[str, Any], *, idempotency_key: str) -> CheckoutSession:
        """Create a Checkout Session; the same `idempotency_key` within Stripe's 24 h gives the same session."""
        try:
            session = await self._client.v1.checkout.sessions.create_async(
                cast("SessionCreateParams", dict(params)), {"idempotency_key": idempotency_key}
            )
        except stripe.StripeError as exc:
            raise _unavailable("create a checkout session", exc) from exc
        if not session.url:
            raise StripeUnavailable(f"checkout session {session.id} came back without a URL")
        return CheckoutSession(id=session.id, url=session.url, expires_at=int(session.expires_at))

    async def expire_checkout_session(self, session_id: str) -> str:
        """Make a Checkout Session impossible to pay; its status afterwards: "expired" (now or earlier), "complete"
        (it was paid) or "missing" (Stripe does not know it). Stripe expires only an open session: when it refuses,
        the session is read to learn why."""
        try:
            await self._client.v1.checkout.sessions.expire_async(session_id)
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_missing":
                return "missing"
            logger.info("checkout session %s was not expired (%s): reading its status", session_id, exc.code)
        except stripe.StripeError as exc:
            raise _unavailable("expire a checkout session", exc) from exc
        else:
            return "expired"
        try:
            session = await self._client.v1.checkout.sessions.retrieve_async(session_id)
        except stripe.StripeError as exc:
            error = _unavailable("retrieve a checkout session", exc)
            if isinstance(error, StripeObjectMissing):
                return "missing"
            raise error from exc
        if session.status not in ("expired", "complete"):
            raise StripeUnavailable(f"checkout session {session_id} could not be expired (status {session.status})")
        return str(session.status)

    async def create_portal_session(self, customer_id: str, return_url: str) -> str:
        """A Customer Portal session for `customer_id` (card, invoices, cancelling); the URL to send the browser to.

        No idempotency key of ours: a portal session is short-lived and each press may make a new one (the
        library keys its own retries).
        """
        params = cast("PortalSessionCreateParams", {"customer": customer_id, "return_url": return_url})
        try:
            session = await self._client.v1.billing_portal.sessions.create_async(params)
        except stripe.StripeError as exc:
            raise _unavailable("create a customer portal session", exc) from exc
        if not session.url:
            raise StripeUnavailable(f"customer portal session {session.id} came back without a URL")
        return session.url

    async def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]:
        """The subscription as Stripe has it now; `StripeObjectMissing` when Stripe does not know it."""
        try:
            found = await self._client.v1.subscriptions.retrieve_async(subscription_id)
        except stripe.StripeError as exc:
            raise _unavailable("retrieve a subscription", exc) from exc
        return found.to_dict()

    async def cancel_at_period_end(self, subscription_id: str) -> dict[str, Any]:
        """Ask Stripe to end the subscription when the paid period ends; the updated subscription."""
        params = cast("SubscriptionUpdateParams", {"cancel_at_period_end": True})
        try:
            updated = await self._client.v1.subscriptions.update_async(subscription_id, params)
        except stripe.StripeError as exc:
            raise _unavailable("update a subscription", exc) from exc
        return updated.to_dict()

    async def cancel_now(self, subscription_id: str) -> dict[str, Any] | None:
        """Cancel the subscription at once (account erasure); None when Stripe no longer has it."""
        try:
            canceled = await self._client.v1.subscriptions.cancel_async(subscription_id)
        except stripe.StripeError as exc:
            error = _unavailable("cancel a subscription", exc)
            if isinstance(error, StripeObjectMissing):
                return None
            raise error from exc
        return canceled.to_dict()

    async def aclose(self) -> None:
        """Close the HTTP session (opened on the first request; nothing to close before)."""
        # `close_async` would first CREATE a session just to close it when no request was ever made.
        if getattr(self._http, "_cached_session", None) is not None:
            await self._http.close_async()  # type: ignore[no-untyped-call]


def _unavailable(action: str, exc: stripe.StripeError) -> StripeUnavailable:
    """Our error for a Stripe failure; logs Stripe's type/code/status (no key, no request body)."""
    code, status = getattr(exc, "code", None), getattr(exc, "http_status", None)
    logger.warning("Stripe could not %s: %s (code %s, HTTP %s)", action, type(exc).__name__, code, status)
    if isinstance(exc, stripe.InvalidRequestError) and code == "resource_missing":
        return StripeObjectMissing(f"Stripe could not {action}: the object does not exist")
    return StripeUnavailable(f"Stripe could not {action}: {type(exc).__name__} ({code})")
