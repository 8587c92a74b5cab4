"""Errors of the portal: refused links, photos not shown or not deleted, bad page parameters, unfinished erasure."""

from __future__ import annotations

from core.errors import AvaError


class LinkInvalid(AvaError):
    """A portal link was tampered with, malformed, or issued for something else."""

    http_status = 403
    public_title = "Link not valid"
    public_message = "This link is not valid."


class LinkExpired(LinkInvalid):
    """A portal link was genuine but is older than its lifetime."""

    public_title = "Link expired"
    public_message = "This link has expired. Ask in the chat for a new one."


class SignInRequired(AvaError):
    """A page or photo that needs a signed-in owner was asked for without a session."""

    http_status = 403
    public_title = "Sign in"
    public_message = "Sign in to see this photo."


class PhotoNotFound(AvaError):
    """No such photo for this viewer (missing, someone else's, or not ready: one answer for all)."""

    http_status = 404
    public_title = "Not found"
    public_message = "Not found."


class PhotoUnavailable(AvaError):
    """The photo store failed; the photo exists but cannot be shown now."""

    http_status = 503
    public_title = "Try again later"
    public_message = "The photo cannot be shown right now."


class PhotoNotDeleted(AvaError):
    """The photo store failed while deleting a photo; the photo stays and deleting again finishes it."""

    http_status = 503
    public_title = "Not deleted"
    public_message = "The photo could not be deleted just now. Try again in a few minutes."


class PhotoProtected(AvaError):
    """Deleting the current avatar's kept reference portrait: every later photo is made from it."""

    http_status = 409
    public_title = "This photo stays"
    public_message = (
        "This is my portrait for the look you chose: I use it for every photo, so it cannot be deleted. "
        "Edit the avatar on your account page to change it."
    )


class LinkUsed(LinkInvalid):
    """A one-time link (a magic sign-in link) that was already opened."""

    public_title = "Link already used"
    public_message = "This link was already used. Send /portal in the chat for a new one."


class PageNotFound(AvaError):
    """A portal page asked for with a malformed or out-of-range parameter (e.g. a gallery cursor)."""

    http_status = 404
    public_title = "Not found"
    public_message = "Not found."


class ErasureIncomplete(AvaError):
    """Deleting an account's data failed part-way (Stripe or storage down); running it again finishes it."""

    http_status = 503
    public_title = "Not finished"
    public_message = "Your data could not be fully deleted just now. Try again in a few minutes to finish it."
