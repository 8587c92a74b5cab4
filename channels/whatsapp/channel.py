"""`WhatsAppChannel`: the core `Channel` port over pywa_async, and the mapping of Graph API errors.

Replies are rendered by `core.render` from `WHATSAPP_CAPABILITIES`, then each part goes out as one message:
text, reply buttons, a list message or a CTA URL button. A photo is never sent as an image (PLAT-03): it is a
CTA URL button to the signed portal link (a text link where WhatsApp refuses the URL).

A reply rendered as several parts (a long text) that fails half-way is retried as a whole by the core; the parts
already accepted are remembered here (per process, bounded) and not sent again, so a retry in the same process
does not repeat them.

Errors (`to_delivery_error`): 131047 (24-hour window closed) -> `channels.errors.WindowClosed`; the recipient
cannot be reached (131026 and kin) -> permanent; rate limits -> transient with a `retry_after` guess; everything
else - auth and configuration errors an operator must fix, Meta outages, network errors, unknown codes -> transient
(never mark a user unreachable for our own or Meta's problem).
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from typing import Final

import httpx
from pywa.errors import (
    BSUIDRecipientNotSupported,
    MessageUndeliverable,
    RecipientCannotBeSender,
    RecipientNotInAllowedList,
    ReEngagementMessage,
    ThrottlingError,
    WhatsAppError,
)
from pywa.types.callback import Button, Section, SectionList, SectionRow, URLButton
from pywa_async.client import WhatsApp

from channels.errors import WindowClosed
from channels.whatsapp.parse import WHATSAPP, WHATSAPP_CAPABILITIES
from core.errors import DeliveryError
from core.messages import ChatRef, Reply, reply_to_payload
from core.models import Direction, Message
from core.ports import ActivityKind, Delivery
from core.render import (
    PHOTO_LINK_LABEL,
    ButtonsPart,
    ImagePart,
    ListPart,
    RenderedPart,
    TextPart,
    UrlButtonPart,
    render,
    shorten,
)

logger = logging.getLogger(__name__)

#: Seconds to wait per rate-limit code when Graph gives no Retry-After (guesses from Meta's documentation):
#: 130429 throughput reached, 131056 too many messages to one user (pair rate), 131048 spam limit,
#: 80007 / 4 account or app call limits (hourly buckets).
RATE_LIMIT_WAITS: Final[dict[int, float]] = {130429: 2.0, 131056: 10.0, 131048: 60.0, 80007: 60.0, 4: 60.0}
DEFAULT_RATE_LIMIT_WAIT = 30.0
#: The recipient cannot receive from us: retries cannot help until they write again.
UNREACHABLE = (MessageUndeliverable, RecipientNotInAllowedList, RecipientCannotBeSender, BSUIDRecipientNotSupported)
_MAX_REMEMBERED = 4096


def _retry_after_header(exc: WhatsAppError) -> float | None:
    response = exc.raw_response
    raw = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def to_delivery_error(exc: WhatsAppError | httpx.HTTPError) -> DeliveryError:
    """The `DeliveryError` for a failed Graph API call (see the module docstring for the policy)."""
    if isinstance(exc, httpx.HTTPError):
        return DeliveryError(f"WhatsApp API unreachable: {type(exc).__name__}: {exc}", permanent=False)
    summary = f"WhatsApp error {exc.code}: {exc.message}" + (f" ({exc.details})" if exc.details else "")
    if isinstance(exc, ReEngagementMessage):
        return WindowClosed(summary)
    if isinstance(exc, UNREACHABLE):
        return DeliveryError(summary, permanent=True)
    header = _retry_after_header(exc)
    if isinstance(exc, ThrottlingError) or exc.code in RATE_LIMIT_WAITS or exc.status_code == 429:
        wait = header if header is not None else RATE_LIMIT_WAITS.get(exc.code, DEFAULT_RATE_LIMIT_WAIT)
        return DeliveryError(summary, permanent=False, retry_after=wait)
    # Auth / permission / payment / account problems, Meta outages, invalid parameters (our bug), unknown codes:
    # retried, then dead-lettered by the core, and logged loudly - the user is not to blame.
    logger.error("WhatsApp refused a send: %s (type %s, fbtrace %s)", summary, exc.type, exc.fbtrace_id)
    return DeliveryError(summary, permanent=False, retry_after=header)


def _fingerprint(ref: ChatRef, reply: Reply) -> str:
    payload = repr((ref.chat_id, sorted(reply_to_payload(reply).items())))
    return hashlib.sha256(payload.encode()).hexdigest()


class WhatsAppChannel:
    """`core.ports.Channel` for WhatsApp Cloud API, through a pywa_async client built with `server=None`."""

    name = WHATSAPP
    capabilities = WHATSAPP_CAPABILITIES

    def __init__(self, wa: WhatsApp, *, session: httpx.AsyncClient | None = None) -> None:
        """`session`: the HTTP client `wa` was built on, closed by `aclose` (pywa has no close of its own)."""
        self._wa = wa
        self._session = session
        #: Last inbound wamid per chat, for the typing indicator (bounded, oldest dropped first).
        self._last_inbound: OrderedDict[str, str] = OrderedDict()
        #: wamids of the parts already accepted, per reply whose send failed half-way.
        self._partial: OrderedDict[str, list[str]] = OrderedDict()

    @property
    def wa(self) -> WhatsApp:
        """The pywa client (the webhook route validates signatures with it)."""
        return self._wa

    async def aclose(self) -> None:
        """Close the HTTP client this channel owns."""
        if self._session is not None:
            await self._session.aclose()

    def note_inbound(self, chat_id: str, wamid: str) -> None:
        """Remember the user's latest message id: WhatsApp shows typing only in answer to a message."""
        self._last_inbound[chat_id] = wamid
        self._last_inbound.move_to_end(chat_id)
        while len(self._last_inbound) > _MAX_REMEMBERED:
            self._last_inbound.popitem(last=False)

    async def send(self, ref: ChatRef, reply: Reply) -> Delivery:
        """Send `reply` to `ref` as one message per rendered part; the last part's wamid identifies it."""
        if ref.channel != WHATSAPP:
            raise ValueError(f"WhatsAppChannel cannot send to channel {ref.channel!r}")
        parts = render(reply, self.capabilities)
        key = _fingerprint(ref, reply)
        sent = self._partial.pop(key, [])
        try:
            for part in parts[len(sent) :]:
                sent.append(await self._send_part(ref.chat_id, part))
        except (WhatsAppError, httpx.HTTPError) as exc:
            if sent:
                self._partial[key] = sent
                while len(self._partial) > _MAX_REMEMBERED:
                    self._partial.popitem(last=False)
            raise to_delivery_error(exc) from exc
        return Delivery(sent[-1] if sent else None)

    async def _send_part(self, to: str, part: RenderedPart) -> str:
        match part:
            case TextPart(text=text):
                message = await self._wa.send_message(to, text)
            case ButtonsPart(text=text, buttons=buttons):
                message = await self._wa.send_message(
                    to, text, buttons=[Button(title=b.label, callback_data=b.data) for b in buttons]
                )
            case ListPart(text=text, button_label=label, rows=rows):
                section = Section(
                    title=shorten(label, self.capabilities.list_row_title_chars),
                    rows=[SectionRow(title=r.title, callback_data=r.data, description=r.description) for r in rows],
                )
                message = await self._wa.send_message(
                    to, text, buttons=SectionList(button_title=label, sections=[section])
                )
            case UrlButtonPart(text=text, label=label, url=url):
                message = await self._wa.send_message(to, text, buttons=URLButton(title=label, url=url))
            case ImagePart(url=url, caption=caption):
                # Never an image message on WhatsApp (PLAT-03), even if a renderer ever asked for one.
                return await self._send_link(to, caption, url)
            case _:
                raise TypeError(f"not a rendered part: {part!r}")
        return str(message.id)

    async def _send_link(self, to: str, caption: str, url: str) -> str:
        caps = self.capabilities
        label = shorten(PHOTO_LINK_LABEL, caps.url_button_label_chars)
        text = shorten(caption.strip() or label, caps.max_body_chars - len(url) - 1)
        if caps.accepts_url_button(url):
            message = await self._wa.send_message(to, text, buttons=URLButton(title=label, url=url))
        else:
            message = await self._wa.send_message(to, f"{text}\n{url}")
        return str(message.id)

    async def show_activity(self, ref: ChatRef, kind: ActivityKind) -> None:
        """Show "typing…" in answer to the user's latest message (WhatsApp has no photo activity); never raises."""
        if kind != "typing" or ref.channel != WHATSAPP:
            return
        try:
            wamid = self._last_inbound.get(ref.chat_id) or await _latest_inbound_wamid(ref.chat_id)
            if wamid is not None:
                await self._wa.indicate_typing(wamid)
        except Exception as exc:  # an activity hint is best effort: the reply itself still comes
            logger.debug("WhatsApp typing indicator for a chat not shown: %s", exc)


async def _latest_inbound_wamid(chat_id: str) -> str | None:
    """The wamid of the chat's latest stored inbound message (another process may have received it)."""
    row = (
        await Message.filter(channel=WHATSAPP, chat_id=chat_id, direction=Direction.INBOUND)
        .order_by("-id")
        .only("id", "external_message_id")
        .first()
    )
    key = row.external_message_id if row is not None else None
    return key.removeprefix("wamid:") if key and key.startswith("wamid:") else None
