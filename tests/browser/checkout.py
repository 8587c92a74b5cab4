"""The fake Stripe's hosted Checkout page for the browser: a "Pay" button that does what paying on Stripe does.

Paying completes the session in the fake (a customer and an active subscription), sends Stripe's signed
`checkout.session.completed` and `customer.subscription.created` webhooks to the application, then sends the
browser back to the session's `success_url`, like Stripe does. A webhook the application refuses shows as an
error page (the journey then fails on the success page, with the reason in its screenshot).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from tests.fakes.server import MATCH
from tests.fakes.stripe import WEBHOOK_SECRET, FakeStripe, event_body, sign

PAY_PATH = "/c/pay/{id}"


@dataclass
class Delivery:
    """One webhook sent to the application and its answer."""

    event_type: str
    status: int


@dataclass
class HostedCheckout:
    """Serves the Checkout page on `stripe` and delivers the webhooks to `webhook_url` once paid."""

    stripe: FakeStripe
    webhook_url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)

    def install(self) -> None:
        """Replace the fake's bare Checkout page with the payable one."""
        self.stripe.handle("GET", PAY_PATH, self._page)
        self.stripe.handle("POST", PAY_PATH, self._pay)

    async def _page(self, request: web.Request) -> web.Response:
        session = self.stripe.sessions.get(request[MATCH]["id"])
        if session is None:
            return web.Response(status=404, text="No such checkout session")
        price = html.escape(str(session["line_items"][0]["price"]))
        body = (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>Fake Stripe Checkout</title></head><body style='font-family:sans-serif;padding:1rem'>"
            f"<h1>Fake Stripe Checkout</h1><p>Subscription, price <code>{price}</code></p>"
            f"<p>Session <code id=session>{html.escape(session['id'])}</code></p>"
            "<form method=post><button type=submit style='font-size:1.2rem;padding:.5rem 1.5rem'>Pay</button></form>"
            "</body></html>"
        )
        return web.Response(text=body, content_type="text/html")

    async def _pay(self, request: web.Request) -> web.StreamResponse:
        session_id = request[MATCH]["id"]
        if self.stripe.sessions.get(session_id, {}).get("status") != "open":
            return web.Response(status=409, text="This checkout session is not open")
        session, subscription = self.stripe.complete_checkout(session_id)
        events = (("checkout.session.completed", session), ("customer.subscription.created", subscription))
        async with aiohttp.ClientSession() as client:
            for event_type, obj in events:
                body = event_body(event_type, obj)
                headers = {"Stripe-Signature": sign(body, WEBHOOK_SECRET), "Content-Type": "application/json"}
                async with client.post(self.webhook_url, data=body, headers=headers) as answer:
                    self.deliveries.append(Delivery(event_type, answer.status))
                    if answer.status != 200:
                        text = f"The shop refused the {event_type} webhook: {answer.status} {await answer.text()}"
                        return web.Response(status=502, text=text)
        success_url = str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session_id)
        raise web.HTTPSeeOther(success_url)
