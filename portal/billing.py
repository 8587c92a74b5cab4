"""Subscribe pages: the plans, Stripe Checkout, the pages Stripe sends the browser back to, Stripe's Customer
Portal (payment method and invoices), and the development activation.

Everything goes through the `portal.ports.Billing` port (billing is wired in by `ava_bot`). The success page
only shows the current state: a subscription is activated by Stripe's webhook, never by a browser arriving
there. A user whose Stripe subscription is not over (say its renewal payment failed and Stripe is retrying)
gets no second checkout, which would bill twice: they update their payment method in the Customer Portal
(`POST /billing/manage`). Without Stripe (development) the subscribe page offers a clearly labelled activation
without payment instead of checkout; that route does not exist once Stripe is configured.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from portal.auth import current_user_id
from portal.csrf import require_csrf
from portal.pages import render
from portal.ports import Billing, PlanView

logger = logging.getLogger(__name__)

#: Why checkout refuses a user whose Stripe subscription is not over (a second one would bill twice).
OPEN_SUBSCRIPTION = (
    "Your subscription is still open with our payment provider ({status}). "
    "Update your payment method from your account page instead of subscribing again."
)

SUBSCRIBE_PATH = "/subscribe"
#: Stripe replaces `{CHECKOUT_SESSION_ID}` in the success URL with the session's id.
SUCCESS_PATH = "/billing/success?session_id={CHECKOUT_SESSION_ID}"
CANCEL_PATH = "/billing/cancel"
MANAGE_PATH = "/billing/manage"
#: Where the Customer Portal sends the browser back to.
ACCOUNT_PATH = "/account"


def setup_billing_pages(app: web.Application, *, billing: Billing | None, public_base_url: str) -> None:
    """Register `/subscribe`, `POST /billing/checkout`, `/billing/success`, `/billing/cancel`,
    `POST /billing/manage` and, without Stripe, `POST /billing/dev-activate`. `billing=None`: the pages say
    subscriptions are unavailable."""
    base = public_base_url.rstrip("/")

    async def signed_in(request: web.Request, back: str) -> int:
        user_id = await current_user_id(request)
        if user_id is None:
            raise web.HTTPSeeOther(f"/signin?next={back}")
        return user_id

    async def subscribe_page(request: web.Request) -> web.Response:
        """The plans with their price label and quotas, and a subscribe button (or the development activation)."""
        user_id = await signed_in(request, SUBSCRIBE_PATH)
        if billing is None:
            return await render(request, "subscribe.html", {"plans": [], "unavailable": True})
        context = {
            "plans": await billing.plans(),
            "subscription": await billing.subscription(user_id),
            "development": billing.development,
        }
        return await render(request, "subscribe.html", context)

    async def checkout(request: web.Request) -> web.StreamResponse:
        """Create a Checkout Session for the signed-in user and send the browser there (303, or JSON)."""
        wants_json = "application/json" in request.headers.get("Accept", "")
        user_id = await signed_in(request, SUBSCRIBE_PATH)
        form = await request.post()
        await require_csrf(request, form)
        if billing is None or billing.development:
            raise web.HTTPNotFound()
        fields: Mapping[str, Any] = form
        if request.content_type == "application/json":
            fields = await _json_body(request)
        current = await billing.subscription(user_id)
        if current is not None and (current.entitled or current.open_in_stripe):
            # An open Stripe subscription (e.g. a failed renewal Stripe is retrying) is fixed, not bought again.
            reason = (
                "You already have a subscription."
                if current.entitled
                else OPEN_SUBSCRIPTION.format(status=current.status.replace("_", " "))
            )
            if wants_json:
                return web.json_response({"error": reason, "redirect": ACCOUNT_PATH}, status=409)
            raise web.HTTPSeeOther(ACCOUNT_PATH)
        plan = await _chosen_plan(billing, fields.get("plan"))
        url = await billing.checkout_url(user_id, plan, success_url=base + SUCCESS_PATH, cancel_url=base + CANCEL_PATH)
        if wants_json:
            return web.json_response({"checkout_url": url})
        raise web.HTTPSeeOther(url)

    async def manage(request: web.Request) -> web.StreamResponse:
        """Open Stripe's Customer Portal (payment method, invoices) for the signed-in user (303, or JSON)."""
        wants_json = "application/json" in request.headers.get("Accept", "")
        user_id = await signed_in(request, ACCOUNT_PATH)
        await require_csrf(request, await request.post())
        if billing is None or billing.development:
            raise web.HTTPNotFound()
        url = await billing.manage_url(user_id, base + ACCOUNT_PATH)
        if wants_json:
            return web.json_response({"manage_url": url})
        raise web.HTTPSeeOther(url)

    async def success_page(request: web.Request) -> web.Response:
        """Back from Checkout: the subscription is being activated (by Stripe's webhook); the current status."""
        user_id = await signed_in(request, "/billing/success")
        subscription = await billing.subscription(user_id) if billing is not None else None
        return await render(request, "billing_success.html", {"subscription": subscription})

    async def cancel_page(request: web.Request) -> web.Response:
        """Back from Checkout without paying: nothing was charged."""
        return await render(request, "billing_cancel.html", {})

    async def dev_activate(request: web.Request) -> web.Response:
        """DEVELOPMENT ONLY (no Stripe): give the signed-in user the plan for one period without payment."""
        if billing is None or not billing.development:
            raise web.HTTPNotFound()
        user_id = await signed_in(request, SUBSCRIBE_PATH)
        form = await request.post()
        await require_csrf(request, form)
        plan = await _chosen_plan(billing, form.get("plan"))
        await billing.activate_development(user_id, plan)
        raise web.HTTPSeeOther("/billing/success")

    app.router.add_get(SUBSCRIBE_PATH, subscribe_page)
    app.router.add_post("/billing/checkout", checkout)
    app.router.add_get("/billing/success", success_page)
    app.router.add_get(CANCEL_PATH, cancel_page)
    app.router.add_post(MANAGE_PATH, manage)
    app.router.add_post("/billing/dev-activate", dev_activate)


async def _chosen_plan(billing: Billing, raw: object) -> str:
    """The plan code the form names, or the default plan's when it names none (unknown codes: billing refuses)."""
    if isinstance(raw, str) and raw.strip():
        return raw.strip()[:64]
    plans = await billing.plans()
    default = _default(plans)
    if default is None:
        raise web.HTTPNotFound()
    return default.code


def _default(plans: Sequence[PlanView]) -> PlanView | None:
    """The default plan, else the first one."""
    return next((plan for plan in plans if plan.is_default), plans[0] if plans else None)


async def _json_body(request: web.Request) -> Mapping[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text=json.dumps({"error": "Invalid JSON."}), content_type="application/json") from None
    return body if isinstance(body, dict) else {}
