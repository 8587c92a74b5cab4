"""The end of the avatar setup: the reference photo is requested, then kept or regenerated.

The first reference of the initial setup is free; unsubscribed users get a few free regenerations; a
subscriber's regenerations (and an edit's new reference) count against their plan's daily cap. A reference
the prompt safety blocked counts as a refused description: the appearance question is asked again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from core.messages import Choice, ChoicesReply, InboundMessage, LinkReply, PhotoReady, TextReply
from core.models import Avatar, SetupStep, User
from core.outcome import Outcome
from core.ports import Entitlements, Links, PhotoEvent, PhotoRequests
from core.quota import regeneration_key, regenerations_used_up_line
from core.setup import REFUSED_ANSWER, clear_draft, refused, restart, set_draft_value

logger = logging.getLogger(__name__)

REF_KEEP = "ref:keep"
REF_AGAIN = "ref:again"


def paywall(links: Links, user_id: int) -> LinkReply:
    """The subscribe line a user without a subscription gets."""
    return LinkReply(
        "To chat with me you need a subscription. It only takes a minute:", "Subscribe", links.subscribe_url(user_id)
    )


class ReferenceReview:
    """Requests reference photos and runs their review (keep / regenerate) for the setup flow."""

    def __init__(
        self, *, photos: PhotoRequests, entitlements: Entitlements, links: Links, free_regenerations: int
    ) -> None:
        self._photos = photos
        self._entitlements = entitlements
        self._links = links
        self._free = free_regenerations

    def requested(self, user: User, intro: str) -> Outcome:
        """Move the user to "reference pending" and say so (the caller adds the effect that requests it)."""
        user.setup_step = SetupStep.REFERENCE_PENDING
        user.setup_photo_id = None
        return Outcome([TextReply(f"{intro} Give me a moment, I'm taking my photo so you can see me 📸")])

    async def request(self, user: User, avatar_id: int, message_id: int, msg: InboundMessage) -> int:
        """Record a reference photo request for `avatar_id` (inside the turn's transaction); its photo id."""
        return await self._photos.request_photo(
            user_id=user.id,
            avatar_id=avatar_id,
            kind="reference",
            scene=None,
            source_key=f"ref:{message_id}",
            ref=msg.ref,
        )

    async def entitled(self, user: User) -> bool:
        """Whether the user has a subscription."""
        return await self._entitlements.may_chat(user.id)

    async def charge_regeneration(self, user: User, message_id: int) -> Outcome | None:
        """Charge one regeneration for `message_id`; the refusal to answer when none is left today, else None."""
        verdict = await self._entitlements.charge(user.id, "regeneration", regeneration_key(message_id))
        if verdict.allowed:
            return None
        if verdict.reason == "subscription":
            return Outcome([paywall(self._links, user.id)])
        return Outcome([TextReply(regenerations_used_up_line(verdict))])

    def choices(self, user: User, entitled: bool, *, regenerate: bool = True) -> ChoicesReply:
        """ "Do you like how I look?" with Keep and, while allowed, Regenerate."""
        if not regenerate:
            return ChoicesReply("Do you like how I look? You can keep me like this.", (Choice("Keep ✓", REF_KEEP),))
        if entitled:
            note = "Keep me like this, or I can take a new one."
        else:
            left = max(0, self._free - user.reference_regenerations)
            note = (
                f"Keep me like this, or regenerate: {left} of {self._free} free regenerations left before subscribing."
            )
        options = [Choice("Keep ✓", REF_KEEP)]
        if entitled or user.reference_regenerations < self._free:
            options.append(Choice("Regenerate ↻", REF_AGAIN))
        return ChoicesReply(f"Do you like how I look? {note}", tuple(options))

    def _again(self, user: User, message_id: int, msg: InboundMessage, intro: str) -> Outcome:
        avatar_id = user.setup_avatar_id
        if avatar_id is None:  # defensive: review always has an avatar being set up
            return Outcome([restart(user)])
        outcome = self.requested(user, intro)

        async def request_reference() -> None:
            outcome.photo_ids.append(await self.request(user, avatar_id, message_id, msg))

        outcome.effects.append(request_reference)
        return outcome

    async def review(self, user: User, msg: InboundMessage, message_id: int) -> Outcome:
        """Answer a message while the reference photo is shown: keep, regenerate, or the choices again."""
        answer = msg.choice or (msg.text or "").strip().lower()
        entitled = await self.entitled(user)
        if answer in (REF_KEEP, "keep", "yes") and user.setup_photo_id is not None:
            return await self._keep(user)
        if answer not in (REF_AGAIN, "regenerate", "again", "no"):
            return Outcome([self.choices(user, entitled)])
        if user.setup_photo_id is None:  # the last attempt failed: retrying is free
            return self._again(user, message_id, msg, "Let's try again!")
        if entitled:  # subscribers' regenerations count against their plan's daily cap
            refusal = await self.charge_regeneration(user, message_id)
            if refusal is not None:
                refusal.replies.append(self.choices(user, entitled, regenerate=False))
                return refusal
            return self._again(user, message_id, msg, "Sure!")
        if user.editing_avatar:  # the subscription ended during an edit: the free ones are for the first setup
            return Outcome([paywall(self._links, user.id), self.choices(user, entitled, regenerate=False)])
        if user.reference_regenerations >= self._free:
            return Outcome(
                [
                    TextReply(
                        f"That was the last of your {self._free} free regenerations. "
                        "You can keep this photo, or subscribe to regenerate as often as you like."
                    ),
                    self.choices(user, entitled),
                    LinkReply(
                        "Subscribe for unlimited regenerations.", "Subscribe", self._links.subscribe_url(user.id)
                    ),
                ]
            )
        user.reference_regenerations += 1
        return self._again(user, message_id, msg, "Sure!")

    async def _keep(self, user: User) -> Outcome:
        avatar_id, photo_id = user.setup_avatar_id, user.setup_photo_id
        avatar = await Avatar.get_or_none(id=avatar_id, user_id=user.id) if avatar_id is not None else None
        if avatar is None or photo_id is None:  # defensive: start the questions again
            return Outcome([restart(user)])
        was_editing = user.editing_avatar
        user.setup_step, user.editing_avatar = SetupStep.DONE, False
        clear_draft(user)
        if was_editing:
            outcome = Outcome([TextReply(f"New look saved ✨ It's still me, {avatar.name}.")])
        else:
            kept = f"Perfect, that's me: {avatar.name} 💕 I'm in secretary mode; send /mode to switch to intimate mode."
            outcome = Outcome([TextReply(kept)])
            if not await self.entitled(user):
                outcome.replies.append(paywall(self._links, user.id))

        async def approve() -> None:
            await Avatar.filter(id=avatar.id).update(reference_photo_id=photo_id, approved_at=datetime.now(UTC))

        outcome.effects.append(approve)
        return outcome

    async def photo_event(self, user: User, event: PhotoEvent) -> Outcome:
        """A reference photo finished, failed or was blocked: review it, retry, or ask for a new description."""
        if user.setup_step != SetupStep.REFERENCE_PENDING or user.setup_avatar_id != event.avatar_id:
            logger.info("stale reference photo %s ignored", event.photo_id)
            return Outcome()
        user.setup_step = SetupStep.REFERENCE_REVIEW
        if event.status == "ready":
            user.setup_photo_id = event.photo_id
            url = self._links.photo_url(user.id, event.photo_id)
            return Outcome(
                [
                    PhotoReady(event.photo_id, url, "Here I am! 📸", kind="reference"),
                    self.choices(user, await self.entitled(user)),
                ]
            )
        user.setup_photo_id = None
        if event.status == "blocked":  # refused when the prompt was built: it counts as a refused answer
            user.setup_step = SetupStep.APPEARANCE
            set_draft_value(user, SetupStep.APPEARANCE, None)
            user.setup_avatar_id = None
            why = "I couldn't take that photo: my description broke our safety rules. "
            return refused(user, SetupStep.APPEARANCE, why + REFUSED_ANSWER[SetupStep.APPEARANCE])
        retry = (Choice("Try again ↻", REF_AGAIN),)
        return Outcome([ChoicesReply("My camera failed this time 😕 Shall I try again? (This one is free.)", retry)])
