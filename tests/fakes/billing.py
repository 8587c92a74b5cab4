"""An in-memory `portal.ports.Billing` for portal tests: one plan, subscriptions the test sets, calls recorded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from billing.service import PlanView, SubscriptionView

PLAN = PlanView(
    code="monthly",
    name="Ava Monthly",
    price_label="9.99 EUR / month",
    interval="month",
    photos_per_period=30,
    regenerations_per_day=5,
    messages_per_day=500,
    is_default=True,
)


@dataclass
class FakeBilling:
    """Billing held in memory (implements the portal's `Billing` Protocol structurally)."""

    subscriptions: dict[int, SubscriptionView] = field(default_factory=dict)
    cancelled: list[int] = field(default_factory=list)
    #: (user_id, return_url) of each `manage_url` call.
    managed: list[tuple[int, str]] = field(default_factory=list)
    development: bool = False

    def subscribe(self, user_id: int, *, period_end: datetime | None = None) -> SubscriptionView:
        """Give the user an active Stripe subscription renewing at `period_end` (30 days from now by default)."""
        view = SubscriptionView(
            plan=PLAN,
            status="active",
            entitled=True,
            current_period_end=period_end or datetime.now(UTC) + timedelta(days=30),
            cancel_at_period_end=False,
            source="stripe",
            photos_left=28,
            open_in_stripe=True,
        )
        self.subscriptions[user_id] = view
        return view

    def fail_payment(self, user_id: int, status: str = "past_due") -> SubscriptionView:
        """Turn the user's Stripe subscription to `status` after a failed renewal (not entitled, still open)."""
        view = replace(
            self.subscriptions.get(user_id) or self.subscribe(user_id),
            status=status,
            entitled=False,
            photos_left=None,
            payment_failed=True,
            open_in_stripe=True,
        )
        self.subscriptions[user_id] = view
        return view

    async def plans(self) -> Sequence[PlanView]:
        """The one plan."""
        return [PLAN]

    async def subscription(self, user_id: int) -> SubscriptionView | None:
        """What the test set for the user."""
        return self.subscriptions.get(user_id)

    async def checkout_url(self, user_id: int, plan_code: str, *, success_url: str, cancel_url: str) -> str:
        """A made-up Checkout address."""
        return f"https://checkout.stripe.test/{user_id}/{plan_code}"

    async def activate_development(self, user_id: int, plan_code: str) -> None:
        """Refused: this fake is a Stripe deployment."""
        raise RuntimeError("not a development deployment")

    async def cancel_at_period_end(self, user_id: int) -> None:
        """Record the call and mark the subscription as ending at its period end."""
        self.cancelled.append(user_id)
        view = self.subscriptions.get(user_id)
        if view is not None:
            self.subscriptions[user_id] = replace(view, cancel_at_period_end=True)

    async def manage_url(self, user_id: int, return_url: str) -> str:
        """Record the call; a made-up Customer Portal address."""
        self.managed.append((user_id, return_url))
        return f"https://billing.stripe.test/p/session/{user_id}"
