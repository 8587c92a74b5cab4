"""What the portal needs from the rest of Ava, as Protocols; `ava_bot` wires the implementations in.

The portal never imports the imaging package: photos reach it through `PhotoLibrary` (implemented by
`imaging.library`). Implementations need no base class.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable


class GalleryPhoto(Protocol):
    """One finished photo as the gallery shows it (implementations return small frozen dataclasses)."""

    @property
    def id(self) -> int:
        """The photo id (its bytes are at `/photos/{id}`)."""
        ...

    @property
    def kind(self) -> str:
        """Either "reference" (the avatar's portrait) or "photo"."""
        ...

    @property
    def scene(self) -> str | None:
        """What the photo shows, as Ava described the scene."""
        ...

    @property
    def created_at(self) -> datetime:
        """When the photo was requested."""
        ...

    @property
    def protected(self) -> bool:
        """The current avatar's kept reference (or one under review): it anchors her look and cannot be deleted."""
        ...


@runtime_checkable
class PhotoLibrary(Protocol):
    """Finished photos of a user: their bytes, the gallery list (chat photos and kept references), deleting one."""

    async def photo_bytes(self, owner_id: int, photo_id: int) -> bytes | None:
        """The JPEG of `photo_id` when it is `owner_id`'s and ready; None when missing, not theirs or not ready.

        Raise a `core.errors.AvaError` when the photo exists but cannot be read now (storage failure).
        """
        ...

    async def gallery(self, owner_id: int, limit: int, before: int | None = None) -> Sequence[GalleryPhoto]:
        """`owner_id`'s ready chat photos and kept references (not the portraits regenerated away), newest first,
        at most `limit`; with `before`, only photos with a smaller id."""
        ...

    async def photo(self, owner_id: int, photo_id: int) -> GalleryPhoto | None:
        """One ready photo of `owner_id` (date and caption for its page); None when missing, not theirs or not ready."""
        ...

    async def delete(self, owner_id: int, photo_id: int) -> Literal["deleted", "missing", "protected"]:
        """Delete `owner_id`'s ready photo with its files; "missing" when there is no such photo of theirs,
        "protected" (nothing deleted) for the current avatar's kept reference.

        Raise a `core.errors.AvaError` when the files cannot be deleted now (the photo then stays).
        """
        ...


class PlanView(Protocol):
    """A plan as the subscribe and account pages show it (from the plans configuration)."""

    @property
    def code(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def price_label(self) -> str | None:
        """Display text of the price, e.g. "9.99 EUR / month" (from the plans file; Stripe charges the price id)."""
        ...

    @property
    def interval(self) -> str: ...
    @property
    def photos_per_period(self) -> int: ...
    @property
    def regenerations_per_day(self) -> int: ...
    @property
    def messages_per_day(self) -> int: ...
    @property
    def is_default(self) -> bool: ...


class SubscriptionView(Protocol):
    """A user's subscription as the account page shows it."""

    @property
    def plan(self) -> PlanView | None: ...
    @property
    def status(self) -> str:
        """Stripe's status (active, trialing, past_due, canceled, ...) or "granted"."""
        ...

    @property
    def entitled(self) -> bool: ...
    @property
    def current_period_end(self) -> datetime | None: ...
    @property
    def cancel_at_period_end(self) -> bool: ...
    @property
    def source(self) -> str:
        """stripe, grant or development."""
        ...

    @property
    def photos_left(self) -> int | None: ...
    @property
    def payment_failed(self) -> bool:
        """A payment failed (past_due, unpaid, incomplete): chatting is paused until the payment method is updated."""
        ...

    @property
    def open_in_stripe(self) -> bool:
        """A Stripe subscription that is not over (not canceled or expired): no second checkout, manage it instead."""
        ...


@runtime_checkable
class Billing(Protocol):
    """Plans, checkout and the subscription of a user (implemented by `billing`)."""

    @property
    def development(self) -> bool:
        """True when there is no Stripe (development): the subscribe page offers a labelled development activation."""
        ...

    async def plans(self) -> Sequence[PlanView]:
        """The active plans, default first."""
        ...

    async def subscription(self, user_id: int) -> SubscriptionView | None:
        """The user's subscription, or None when they never had one."""
        ...

    async def checkout_url(self, user_id: int, plan_code: str, *, success_url: str, cancel_url: str) -> str:
        """Create a Stripe Checkout Session (subscription mode) for the user and return its URL.

        Raise `core.errors.AvaError` subclasses for an unknown plan or a Stripe failure.
        """
        ...

    async def activate_development(self, user_id: int, plan_code: str) -> None:
        """DEVELOPMENT ONLY (no Stripe): give the user the plan for one period. Raise when `development` is False."""
        ...

    async def cancel_at_period_end(self, user_id: int) -> None:
        """Cancel the user's subscription at the end of the paid period (Stripe, or a grant ends then)."""
        ...

    async def manage_url(self, user_id: int, return_url: str) -> str:
        """A Stripe Customer Portal session's URL (payment method, invoices), coming back to `return_url`.

        Raise `core.errors.AvaError` subclasses when Stripe does not know the user or fails.
        """
        ...


@runtime_checkable
class AccountEraser(Protocol):
    """Deletes everything of a user (implemented in `ava_bot`, which reaches imaging and billing)."""

    async def erase(self, user_id: int) -> None:
        """Erase the user's personal data, messages, photos (files too), identities and sessions, cancel the
        subscription, pseudonymise audit rows. Safe to call again after a partial failure."""
        ...
