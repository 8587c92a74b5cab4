"""Errors of billing: a bad plans file, unknown plans, Stripe failures, and requests billing cannot serve."""

from __future__ import annotations

from core.errors import AvaError, ConfigError


class PlansFileInvalid(ConfigError):
    """The plans file is missing, not TOML, or breaks a rule; the message names the file and the bad key."""


class UnknownPlan(AvaError):
    """A plan code that is not an active plan of this deployment (or has no Stripe price to check out)."""

    http_status = 404
    public_title = "No such plan"
    public_message = "That plan is not available. Choose one on the subscribe page."


class StripeUnavailable(AvaError):
    """Stripe refused or failed a request (network, 5xx, a rejected parameter); nothing was stored."""

    http_status = 502
    public_title = "Payment provider unavailable"
    public_message = "We could not reach our payment provider. Nothing was charged. Please try again in a moment."


class StripeObjectMissing(StripeUnavailable):
    """Stripe answered that the object (a subscription) does not exist."""


class BillingUnavailable(AvaError):
    """Checkout was asked for where this deployment has no Stripe (development): use the development activation."""

    http_status = 404
    public_title = "Not available"
    public_message = "Payments are not set up on this server."


class DevelopmentOnly(AvaError):
    """The development activation was asked for where Stripe is configured or in production."""

    http_status = 404
    public_title = "Not found"
    public_message = "Not found."


class NoSubscription(AvaError):
    """Cancelling was asked for by a user without a running subscription."""

    http_status = 409
    public_title = "No subscription"
    public_message = "You have no running subscription to cancel."


class NoStripeCustomer(NoSubscription):
    """The payment settings were asked for by a user Stripe does not know (never checked out)."""

    public_message = "You have no subscription with our payment provider to manage."


class SubscriptionStillOpen(AvaError):
    """A new checkout was asked for while the user's Stripe subscription is not over (e.g. its renewal payment
    failed and Stripe is still retrying it): a second subscription would bill twice."""

    http_status = 409
    public_title = "Subscription still open"
    public_message = (
        "Your subscription is still open with our payment provider. "
        "Update your payment method on your account page instead of subscribing again."
    )


class CheckoutAlreadyPaid(AvaError):
    """A new checkout was asked for while the user's previous Checkout Session is paid but its subscription is not
    recorded yet (Stripe's event is on its way): a second one would bill twice."""

    http_status = 409
    public_title = "Payment received"
    public_message = (
        "Your payment went through and your subscription is being set up. "
        "It shows on your account page in a moment: there is no need to pay again."
    )


class CheckoutConflict(AvaError):
    """Two checkouts of one user were started at the same moment for different plans: the later one was withdrawn."""

    http_status = 409
    public_title = "Checkout already started"
    public_message = "Another checkout was started at the same moment. Nothing was charged. Please choose again."
