"""What the portal needs from the rest of Ava, as Protocols; `ava_bot` wires the implementations in.

The portal never imports the imaging package: photos reach it through `PhotoLibrary` (implemented by
`imaging.library`). Implementations need no base class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


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


@runtime_checkable
class PhotoLibrary(Protocol):
    """Finished photos of a user: their bytes and the gallery list."""

    async def photo_bytes(self, owner_id: int, photo_id: int) -> bytes | None:
        """The JPEG of `photo_id` when it is `owner_id`'s and ready; None when missing, not theirs or not ready.

        Raise a `core.errors.AvaError` when the photo exists but cannot be read now (storage failure).
        """
        ...

    async def gallery(self, owner_id: int, limit: int, before: int | None = None) -> Sequence[GalleryPhoto]:
        """`owner_id`'s ready photos, newest first, at most `limit`; with `before`, only photos with a smaller id."""
        ...

    async def photo(self, owner_id: int, photo_id: int) -> GalleryPhoto | None:
        """One ready photo of `owner_id` (date and caption for its page); None when missing, not theirs or not ready."""
        ...


@dataclass(frozen=True, slots=True)
class PlanView:
    """A plan as the subscribe and account pages show it (from the plans configuration)."""

    code: str
    name: str
    #: Display text of the price, e.g. "9.99 EUR / month" (from the plans file; Stripe charges the price id).
    price_label: str | None
    interval: str
    photos_per_period: int
    regenerations_per_day: int
    messages_per_day: int
    is_default: bool


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    """A user's subscription as the account page shows it."""

    plan: PlanView | None
    #: Stripe's status (active, trialing, past_due, canceled, ...) or "granted".
    status: str
    entitled: bool
    current_period_end: datetime | None
    cancel_at_period_end: bool
    #: stripe, grant or development.
    source: str
    photos_left: int | None


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


@runtime_checkable
class AccountEraser(Protocol):
    """Deletes everything of a user (implemented in `ava_bot`, which reaches imaging and billing)."""

    async def erase(self, user_id: int) -> None:
        """Erase the user's personal data, messages, photos (files too), identities and sessions, cancel the
        subscription, pseudonymise audit rows. Safe to call again after a partial failure."""
        ...
