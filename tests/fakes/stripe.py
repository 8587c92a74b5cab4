"""A fake Stripe API that the real `stripe` library talks to over HTTP, plus signed webhook events.

It speaks the calls Ava makes: `POST /v1/checkout/sessions`, `GET /v1/checkout/sessions/{id}`,
`POST /v1/checkout/sessions/{id}/expire`, `POST /v1/billing_portal/sessions` (Customer Portal),
`GET`/`POST`/`DELETE /v1/subscriptions/{id}`, `GET /v1/customers/{id}`. Requests are form-encoded
with Stripe's bracket syntax (`line_items[0][price]`); `calls` records each with its parameters decoded into
nested dicts and lists and its `Idempotency-Key`. Like Stripe, a POST repeated with the same idempotency key
answers the first answer again. Objects are shaped like the recorded ones in `tests/payloads/stripe/`;
subscriptions live in `subscriptions` so a test can change them (`set_status`, `renew`) before sending the
matching event; Customer Portal sessions land in `portal_sessions`.

    async with FakeStripe() as fake:
        client pointed at fake.url with fake.api_key ...
        session, sub = fake.complete_checkout(session_id)
        body = event_body("customer.subscription.created", sub)
        headers = {"Stripe-Signature": sign(body, WEBHOOK_SECRET)}
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import html
import itertools
import json
import re
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes.server import MATCH, FakeServer

API_KEY = "sk_test_51AvaFakeKeyForTestsOnly"
WEBHOOK_SECRET = "whsec_test_AvaFakeWebhookSecret"
PRICE_ID = "price_1SMonthlyEUR999"
PAYLOADS = Path(__file__).resolve().parent.parent / "payloads" / "stripe"
DAY = 86400

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    """A Stripe-looking id, unique in this test process."""
    return f"{prefix}_1SAvaFake{next(_ids):010d}"


def payload(name: str) -> dict[str, Any]:
    """A recorded payload from `tests/payloads/stripe/<name>.json` (a fresh copy)."""
    return json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def sign(body: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header for `body`: `t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<body>")>`."""
    ts = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"


def decode_form(body: bytes) -> dict[str, Any]:
    """Stripe's form encoding (`a[b][0][c]=v`) as nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        parts = [key.split("[", 1)[0], *re.findall(r"\[([^\]]*)\]", key)]
        node: Any = root
        for part, following in itertools.pairwise(parts):
            container: Any = [] if following.isdigit() else {}
            node = _child(node, part, container)
        _set(node, parts[-1], value)
    return root


def _child(node: Any, part: str, empty: Any) -> Any:
    if isinstance(node, list):
        index = int(part)
        while len(node) <= index:
            node.append(copy.copy(empty))
        return node[index]
    return node.setdefault(part, empty)


def _set(node: Any, part: str, value: str) -> None:
    if isinstance(node, list):
        index = int(part)
        while len(node) <= index:
            node.append(None)
        node[index] = value
    else:
        node[part] = value


# --- objects and events ---------------------------------------------------------------------------------------


def subscription_object(
    *,
    id: str | None = None,
    customer: str = "cus_TAvaExample0001",
    user_id: int | None = 1,
    price: str = PRICE_ID,
    status: str = "active",
    period_start: int | None = None,
    period_end: int | None = None,
    cancel_at_period_end: bool = False,
    plan: str = "monthly",
) -> dict[str, Any]:
    """A subscription shaped like Stripe's (the period on its item, as at the current API version)."""
    sub = payload("customer_subscription_created")["data"]["object"]
    start = int(time.time()) if period_start is None else period_start
    end = start + 30 * DAY if period_end is None else period_end
    sub_id = id or new_id("sub")
    sub.update(
        id=sub_id,
        customer=customer,
        status=status,
        created=start,
        start_date=start,
        billing_cycle_anchor=start,
        cancel_at_period_end=cancel_at_period_end,
        metadata={"user_id": str(user_id), "plan": plan} if user_id is not None else {},
    )
    item = sub["items"]["data"][0]
    item.update(subscription=sub_id, current_period_start=start, current_period_end=end, created=start)
    item["price"]["id"] = price
    sub["items"]["url"] = f"/v1/subscription_items?subscription={sub_id}"
    if status == "canceled":
        sub.update(canceled_at=end, ended_at=end)
    return sub


def invoice_object(
    sub: dict[str, Any], *, paid: bool = True, billing_reason: str = "subscription_cycle"
) -> dict[str, Any]:
    """An invoice of `sub` (its subscription under `parent.subscription_details`, as at the current API version)."""
    invoice = payload("invoice_paid" if paid else "invoice_payment_failed")["data"]["object"]
    item = sub["items"]["data"][0]
    invoice.update(
        id=new_id("in"),
        customer=sub["customer"],
        billing_reason=billing_reason,
        period_start=item["current_period_start"],
        period_end=item["current_period_start"],
    )
    invoice["parent"]["subscription_details"] = {"metadata": dict(sub["metadata"]), "subscription": sub["id"]}
    line = invoice["lines"]["data"][0]
    line["parent"]["subscription_item_details"]["subscription"] = sub["id"]
    line["period"] = {"start": item["current_period_start"], "end": item["current_period_end"]}
    line["pricing"]["price_details"]["price"] = item["price"]["id"]
    return invoice


def event_body(event_type: str, obj: dict[str, Any], *, id: str | None = None, created: int | None = None) -> bytes:
    """A webhook body: an `event` of `event_type` around `obj` (shaped like the recorded events)."""
    event = payload("customer_subscription_created")
    event.update(
        id=id or new_id("evt"),
        type=event_type,
        created=int(time.time()) if created is None else created,
        data={"object": obj},
    )
    return json.dumps(event).encode()


# --- the fake API ---------------------------------------------------------------------------------------------


@dataclass
class StripeCall:
    """One API call: method, path, parameters (decoded), its idempotency key."""

    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None


class FakeStripe(FakeServer):
    """The Stripe API for one secret key."""

    def __init__(self, api_key: str = API_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.calls: list[StripeCall] = []
        self.sessions: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.portal_sessions: dict[str, dict[str, Any]] = {}
        self._replays: dict[str, tuple[int, Any]] = {}
        self._failures: dict[tuple[str, str], deque[tuple[int, dict[str, Any]]]] = defaultdict(deque)
        #: Seconds every API call waits before answering (keeps concurrent webhook deliveries in flight together).
        self.delay = 0.0
        self.handle("POST", "/v1/checkout/sessions", self._create_session)
        self.handle("GET", "/v1/checkout/sessions/{id}", self._get_session)
        self.handle("POST", "/v1/checkout/sessions/{id}/expire", self._expire_session)
        self.handle("POST", "/v1/billing_portal/sessions", self._create_portal_session)
        self.handle("GET", "/v1/subscriptions/{id}", self._get_subscription)
        self.handle("POST", "/v1/subscriptions/{id}", self._update_subscription)
        self.handle("DELETE", "/v1/subscriptions/{id}", self._cancel_subscription)
        self.handle("GET", "/v1/customers/{id}", self._get_customer)
        self.handle("GET", "/c/pay/{id}", self._checkout_page)
        self.handle("GET", "/p/session/{id}", self._portal_page)

    async def __aenter__(self) -> FakeStripe:
        await self.start()
        return self

    # --- scripting ------------------------------------------------------------------------------------------

    def fail(self, method: str, path: str, *, status: int = 500, times: int = 1, code: str | None = None) -> None:
        """The next `times` calls of `method path` (a pattern like `/v1/subscriptions/{id}`) answer an error."""
        kind = "invalid_request_error" if status < 500 else "api_error"
        error = {"type": kind, "code": code, "message": f"fake failure ({status})"}
        for _ in range(times):
            self._failures[(method.upper(), path)].append((status, error))

    def add_subscription(self, **fields: Any) -> dict[str, Any]:
        """Store a subscription (see `subscription_object`) and return it."""
        sub = subscription_object(**fields)
        self.subscriptions[sub["id"]] = sub
        return sub

    def complete_checkout(self, session_id: str, *, status: str = "active") -> tuple[dict[str, Any], dict[str, Any]]:
        """What paying does: a customer, a subscription with the session's metadata, the session complete. Like
        Stripe, only an open session can be paid (`SessionNotPayable` otherwise)."""
        session = self.sessions[session_id]
        if session["status"] != "open":
            raise SessionNotPayable(f"checkout session {session_id} is {session['status']}: it cannot be paid")
        customer = session.get("customer") or new_id("cus")
        self.customers.setdefault(customer, {"id": customer, "object": "customer", "email": session["customer_email"]})
        metadata = session.get("subscription_data", {}).get("metadata", {})
        sub = self.add_subscription(
            customer=customer,
            user_id=int(metadata["user_id"]) if "user_id" in metadata else None,
            price=session["line_items"][0]["price"],
            status=status,
            plan=metadata.get("plan", "monthly"),
        )
        session.update(customer=customer, subscription=sub["id"], status="complete", payment_status="paid", url=None)
        return copy.deepcopy(session), copy.deepcopy(sub)

    def set_status(self, sub_id: str, status: str) -> dict[str, Any]:
        """Change a subscription's status (canceling also ends it); a copy of it afterwards."""
        sub = self.subscriptions[sub_id]
        sub["status"] = status
        if status == "canceled":
            now = int(time.time())
            sub.update(canceled_at=now, ended_at=now)
        return copy.deepcopy(sub)

    def renew(self, sub_id: str) -> dict[str, Any]:
        """Move a subscription to its next period; a copy of it afterwards."""
        item = self.subscriptions[sub_id]["items"]["data"][0]
        length = item["current_period_end"] - item["current_period_start"]
        item["current_period_start"] = item["current_period_end"]
        item["current_period_end"] += length
        return copy.deepcopy(self.subscriptions[sub_id])

    # --- inspection -----------------------------------------------------------------------------------------

    def calls_to(self, method: str, path: str) -> list[StripeCall]:
        """Recorded calls of `method` on the concrete `path`."""
        return [c for c in self.calls if c.method == method.upper() and c.path == path]

    # --- the API --------------------------------------------------------------------------------------------

    async def _call(self, request: web.Request, pattern: str) -> tuple[dict[str, Any], web.Response | None]:
        """Record the call; an early answer for a bad key, a queued failure or an idempotent replay."""
        params = decode_form(await request.read()) if request.method == "POST" else dict(request.query)
        key = request.headers.get("Idempotency-Key")
        self.calls.append(StripeCall(request.method, request.path, params, key))
        if self.delay:
            await asyncio.sleep(self.delay)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return params, _error(401, {"type": "invalid_request_error", "message": "Invalid API Key provided"})
        failures = self._failures.get((request.method, pattern))
        if failures:
            status, error = failures.popleft()
            return params, _error(status, error)
        if key is not None and key in self._replays:
            status, body = self._replays[key]
            return params, web.json_response(body, status=status, headers={"Idempotent-Replayed": "true"})
        return params, None

    def _remember(self, request: web.Request, body: Any, status: int = 200) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        if key is not None:
            self._replays[key] = (status, body)
        return web.json_response(body, status=status)

    async def _create_session(self, request: web.Request) -> web.Response:
        params, early = await self._call(request, "/v1/checkout/sessions")
        if early is not None:
            return early
        session_id = new_id("cs_test")
        session = payload("checkout_session_completed")["data"]["object"]
        session.update(
            id=session_id,
            status="open",
            payment_status="unpaid",
            subscription=None,
            invoice=None,
            customer=params.get("customer"),
            customer_email=params.get("customer_email"),
            client_reference_id=params.get("client_reference_id"),
            metadata=params.get("metadata", {}),
            mode=params.get("mode"),
            success_url=params.get("success_url"),
            cancel_url=params.get("cancel_url"),
            allow_promotion_codes=params.get("allow_promotion_codes") == "true",
            created=int(time.time()),
            expires_at=int(time.time()) + DAY,
            url=f"{self.url}/c/pay/{session_id}",
        )
        session["automatic_tax"]["enabled"] = params.get("automatic_tax", {}).get("enabled") == "true"
        kept = {k: params[k] for k in ("line_items", "subscription_data") if k in params}
        self.sessions[session_id] = {**copy.deepcopy(session), **kept}
        return self._remember(request, session)

    async def _get_session(self, request: web.Request) -> web.Response:
        session_id = request[MATCH]["id"]
        _, early = await self._call(request, "/v1/checkout/sessions/{id}")
        if early is not None:
            return early
        session = self.sessions.get(session_id)
        return web.json_response(_public(session)) if session is not None else _missing("checkout session", session_id)

    async def _expire_session(self, request: web.Request) -> web.Response:
        """Stripe expires only an open session; a complete or expired one answers 400 (and the session is kept)."""
        session_id = request[MATCH]["id"]
        _, early = await self._call(request, "/v1/checkout/sessions/{id}/expire")
        if early is not None:
            return early
        session = self.sessions.get(session_id)
        if session is None:
            return _missing("checkout session", session_id)
        if session["status"] != "open":
            message = 'Only Checkout Sessions with a status in ["open"] can be expired.'
            return _error(400, {"type": "invalid_request_error", "message": message})
        session.update(status="expired", url=None)
        return self._remember(request, _public(session))

    async def _create_portal_session(self, request: web.Request) -> web.Response:
        """A Customer Portal session, for a customer Stripe knows (from a checkout or a stored subscription)."""
        params, early = await self._call(request, "/v1/billing_portal/sessions")
        if early is not None:
            return early
        customer = params.get("customer")
        known = set(self.customers) | {sub["customer"] for sub in self.subscriptions.values()}
        if customer not in known:
            return _missing("customer", str(customer))
        session_id = new_id("bps")
        session = {
            "id": session_id,
            "object": "billing_portal.session",
            "configuration": "bpc_1SAvaFakeDefaultConfig",
            "created": int(time.time()),
            "customer": customer,
            "customer_account": None,
            "flow": None,
            "livemode": False,
            "locale": params.get("locale"),
            "on_behalf_of": None,
            "return_url": params.get("return_url"),
            "url": f"{self.url}/p/session/{session_id}",
        }
        self.portal_sessions[session_id] = session
        return self._remember(request, session)

    async def _get_subscription(self, request: web.Request) -> web.Response:
        _, early = await self._call(request, "/v1/subscriptions/{id}")
        return early or self._subscription_or_404(request[MATCH]["id"])

    async def _update_subscription(self, request: web.Request) -> web.Response:
        params, early = await self._call(request, "/v1/subscriptions/{id}")
        if early is not None:
            return early
        sub = self.subscriptions.get(request[MATCH]["id"])
        if sub is None:
            return self._subscription_or_404(request[MATCH]["id"])
        if "cancel_at_period_end" in params:
            sub["cancel_at_period_end"] = params["cancel_at_period_end"] == "true"
        return self._remember(request, copy.deepcopy(sub))

    async def _cancel_subscription(self, request: web.Request) -> web.Response:
        _, early = await self._call(request, "/v1/subscriptions/{id}")
        if early is not None:
            return early
        sub_id = request[MATCH]["id"]
        if sub_id not in self.subscriptions:
            return self._subscription_or_404(sub_id)
        return web.json_response(self.set_status(sub_id, "canceled"))

    async def _get_customer(self, request: web.Request) -> web.Response:
        _, early = await self._call(request, "/v1/customers/{id}")
        if early is not None:
            return early
        customer = self.customers.get(request[MATCH]["id"])
        if customer is None:
            return _missing("customer", request[MATCH]["id"])
        return web.json_response(customer)

    def _subscription_or_404(self, sub_id: str) -> web.Response:
        sub = self.subscriptions.get(sub_id)
        return web.json_response(copy.deepcopy(sub)) if sub is not None else _missing("subscription", sub_id)

    async def _checkout_page(self, request: web.Request) -> web.Response:
        """Where the Checkout redirect lands (a browser test completes the payment from the test side)."""
        session_id = request[MATCH]["id"]
        if session_id not in self.sessions:
            return web.Response(status=404, text="No such checkout session")
        page = (
            "<!doctype html><title>Fake Stripe Checkout</title>"
            f"<h1>Fake Stripe Checkout</h1><p id=session>{session_id}</p>"
        )
        return web.Response(text=page, content_type="text/html")

    async def _portal_page(self, request: web.Request) -> web.Response:
        """Where the Customer Portal redirect lands: a page with the way back to `return_url`."""
        session = self.portal_sessions.get(request[MATCH]["id"])
        if session is None:
            return web.Response(status=404, text="No such portal session")
        page = (
            "<!doctype html><title>Fake Stripe Customer Portal</title>"
            f"<h1>Fake Stripe Customer Portal</h1><p id=customer>{session['customer']}</p>"
            f'<a id=return href="{html.escape(str(session["return_url"]))}">Return</a>'
        )
        return web.Response(text=page, content_type="text/html")


class SessionNotPayable(Exception):
    """A test tried to pay a Checkout Session Stripe would not take a payment for (expired or complete)."""


def _public(session: dict[str, Any]) -> dict[str, Any]:
    """A stored session as the API answers it (without the creation parameters kept for `complete_checkout`)."""
    return {k: copy.deepcopy(v) for k, v in session.items() if k not in ("line_items", "subscription_data")}


def _missing(kind: str, object_id: str) -> web.Response:
    message = f"No such {kind}: '{object_id}'"
    return _error(404, {"type": "invalid_request_error", "code": "resource_missing", "message": message, "param": "id"})


def _error(status: int, error: dict[str, Any]) -> web.Response:
    return web.json_response({"error": error}, status=status)
