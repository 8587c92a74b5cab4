"""`TelegramChannel`: the core's `Channel` port on the Bot API, through python-telegram-bot's `Bot` as a client.

A reply is rendered by `core.render.render` for `TELEGRAM_CAPABILITIES`, then each part is sent as one message:
plain text (no parse mode, so nothing needs escaping), text with an inline keyboard (one choice per row), or
text with one URL button. Telegram refuses URL buttons to some hosts with a `BadRequest`; such a part is sent
again as a plain-text link. Link previews are off: a preview would make Telegram fetch (and show) signed photo
links. Sends are paced per chat and globally (`FloodPacer`).

Errors become `core.errors.DeliveryError`: flood control (429) is transient with `retry_after`; a blocked bot,
a deactivated user, a missing chat and every other `BadRequest` are permanent; time-outs and network errors are
transient. Configuration errors (invalid token, 401/404) are transient too: they must never mark every user
unreachable, so the rows are retried and finally dead-lettered.

A reply rendered as several messages that fails part-way with a transient error remembers (in this process,
for an hour) how many parts went out, so the core's retry continues with the next part instead of sending the
first ones twice.
"""

from __future__ import annotations

import datetime as dtm
import logging
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ChatAction
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut

from channels.telegram.pacing import FloodPacer
from channels.telegram.parse import TELEGRAM, TELEGRAM_CAPABILITIES
from core.errors import DeliveryError
from core.messages import ChatRef, Reply
from core.ports import ActivityKind, ChannelCapabilities, Delivery
from core.render import (
    PHOTO_LINK_LABEL,
    ButtonsPart,
    ImagePart,
    ListPart,
    RenderedPart,
    TextPart,
    UrlButtonPart,
    render,
    split_text,
)

logger = logging.getLogger(__name__)

#: Callback data limits of the Bot API, in UTF-8 bytes.
MIN_CALLBACK_DATA_BYTES = 1
MAX_CALLBACK_DATA_BYTES = 64

#: BadRequest descriptions meaning the recipient cannot be reached at all.
_UNREACHABLE = ("chat not found", "user is deactivated", "peer_id_invalid", "bot can't initiate conversation")
#: How long, and for how many replies, the parts already sent of a partly failed reply are remembered.
_PROGRESS_TTL = 3600.0
_PROGRESS_MAX = 1024
_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


@dataclass(frozen=True, slots=True)
class _Progress:
    sent: int
    last_message_id: int | None
    at: float


class TelegramChannel:
    """`core.ports.Channel` for Telegram, sending with a python-telegram-bot `Bot`."""

    name: str = TELEGRAM
    capabilities: ChannelCapabilities = TELEGRAM_CAPABILITIES

    def __init__(self, bot: Bot, *, per_chat_interval: float = 1.0, global_rate: float = 30.0) -> None:
        self._bot = bot
        self._pacer = FloodPacer(per_chat_interval=per_chat_interval, global_rate=global_rate)
        self._progress: OrderedDict[tuple[str, Reply], _Progress] = OrderedDict()

    @property
    def bot(self) -> Bot:
        """The Bot API client this channel sends with."""
        return self._bot

    async def send(self, ref: ChatRef, reply: Reply) -> Delivery:
        """Send `reply` as one message per rendered part, paced; the platform id is the last message's id."""
        _check_ref(ref)
        parts = render(reply, self.capabilities)
        for part in parts:  # before anything is sent: never leave a reply half delivered for a bad button
            _check_callback_data(part)
        key = (ref.chat_id, reply)
        progress = self._resume(key)
        sent, last_id = (progress.sent, progress.last_message_id) if progress else (0, None)
        if sent:
            logger.info("resuming a telegram reply after %s of %s parts already sent", sent, len(parts))
        try:
            for part in parts[sent:]:
                last_id = await self._send_part(ref.chat_id, part)
                sent += 1
        except DeliveryError as exc:
            if not exc.permanent and sent:
                self._remember(key, _Progress(sent, last_id, time.monotonic()))
            raise
        return Delivery(str(last_id) if last_id is not None else None)

    async def show_activity(self, ref: ChatRef, kind: ActivityKind) -> None:
        """Show "typing…" or "sending photo…" for about five seconds; failures are only logged (debug)."""
        _check_ref(ref)
        action = ChatAction.TYPING if kind == "typing" else ChatAction.UPLOAD_PHOTO  # a photo retry: still a photo
        try:
            await self._bot.send_chat_action(chat_id=ref.chat_id, action=action)
        except TelegramError as exc:  # a hint only: the reply itself still arrives (or fails loudly)
            logger.debug("telegram chat action %s for a chat failed: %s", action, exc)

    async def _send_part(self, chat_id: str, part: RenderedPart) -> int:
        match part:
            case TextPart(text=text):
                return await self._send(chat_id, text)
            case ButtonsPart(text=text, buttons=buttons):
                keyboard = [[InlineKeyboardButton(b.label, callback_data=b.data)] for b in buttons]
                return await self._send(chat_id, text, InlineKeyboardMarkup(keyboard))
            case UrlButtonPart(text=text, label=label, url=url):
                try:
                    button = InlineKeyboardButton(label, url=url)
                    return await self._send(chat_id, text, InlineKeyboardMarkup([[button]]))
                except DeliveryError as exc:
                    if not _is_url_refusal(exc.__cause__):
                        raise
                    logger.info("telegram refused a URL button (%s); sending the link as text", exc.__cause__)
                return await self._send_text(chat_id, f"{text.strip()}\n{label}: {url}")
            case ListPart(text=text, rows=rows):  # TELEGRAM_CAPABILITIES has no list rows; kept for other caps
                numbered = "\n".join(f"{number}. {row.title}" for number, row in enumerate(rows, 1))
                return await self._send_text(chat_id, f"{text.strip()}\n\n{numbered}")
            case ImagePart(url=url, caption=caption):  # no inline images on Telegram (links only)
                return await self._send_text(chat_id, f"{caption.strip()}\n{PHOTO_LINK_LABEL}: {url}".strip())
        raise TypeError(f"not a rendered part: {part!r}")

    async def _send_text(self, chat_id: str, text: str) -> int:
        """Send text that may exceed one message, split at good boundaries; the last message id."""
        message_id: int | None = None
        for chunk in split_text(text, self.capabilities.max_text_chars):
            message_id = await self._send(chat_id, chunk)
        if message_id is None:
            raise DeliveryError("nothing to send: the text is blank", permanent=True)
        return message_id

    async def _send(self, chat_id: str, text: str, markup: InlineKeyboardMarkup | None = None) -> int:
        async with self._pacer.slot(chat_id):
            try:
                message = await self._bot.send_message(
                    chat_id=chat_id, text=text, reply_markup=markup, link_preview_options=_NO_PREVIEW
                )
            except TelegramError as exc:
                error = delivery_error(exc)
                if error.retry_after:
                    self._pacer.hold_chat(chat_id, error.retry_after)
                raise error from exc
        return message.message_id

    def _resume(self, key: tuple[str, Reply]) -> _Progress | None:
        progress = self._progress.pop(key, None)
        if progress is None or time.monotonic() - progress.at > _PROGRESS_TTL:
            return None
        return progress

    def _remember(self, key: tuple[str, Reply], progress: _Progress) -> None:
        self._progress[key] = progress
        while len(self._progress) > _PROGRESS_MAX:
            self._progress.popitem(last=False)


def delivery_error(exc: TelegramError) -> DeliveryError:
    """The `DeliveryError` for a Bot API error: permanent when no retry can work, else transient."""
    match exc:
        case RetryAfter():
            seconds = retry_after_seconds(exc)
            return DeliveryError(f"Telegram flood control: retry after {seconds:g} s", retry_after=seconds)
        case Forbidden():
            return DeliveryError(f"Telegram refused the chat (blocked or deactivated): {exc.message}", permanent=True)
        case BadRequest() if any(marker in exc.message.lower() for marker in _UNREACHABLE):
            return DeliveryError(f"Telegram chat unreachable: {exc.message}", permanent=True)
        case BadRequest():
            return DeliveryError(f"Telegram rejected the message: {exc.message}", permanent=True)
        case ChatMigrated():
            return DeliveryError(f"Telegram chat moved to {exc.new_chat_id}", permanent=True)
        case TimedOut() | NetworkError():
            return DeliveryError(f"Telegram not reachable: {exc.message}")
    # InvalidToken, EndPointNotFound, Conflict, anything new: our configuration, not the user -> retried.
    return DeliveryError(f"Telegram error {type(exc).__name__}: {exc.message}")


def retry_after_seconds(exc: RetryAfter) -> float:
    """Seconds to wait from a `RetryAfter` (an int or, with PTB_TIMEDELTA set, a timedelta)."""
    with warnings.catch_warnings():  # PTB 22 warns that the int form is deprecated
        warnings.simplefilter("ignore")
        value: object = exc.retry_after
    if isinstance(value, dtm.timedelta):
        return value.total_seconds()
    return float(value) if isinstance(value, int | float) else 1.0


def _is_url_refusal(cause: BaseException | None) -> bool:
    """Whether a BadRequest says Telegram will not take the button's URL (e.g. "wrong HTTP URL")."""
    if not isinstance(cause, BadRequest):
        return False
    text = cause.message.lower()
    return "button_url_invalid" in text or ("url" in text and ("wrong" in text or "invalid" in text))


def _check_callback_data(part: RenderedPart) -> None:
    if not isinstance(part, ButtonsPart):
        return
    for button in part.buttons:
        size = len(button.data.encode())
        if not MIN_CALLBACK_DATA_BYTES <= size <= MAX_CALLBACK_DATA_BYTES:
            raise DeliveryError(
                f"choice data {button.data[:80]!r} is {size} bytes; Telegram callback data must be "
                f"{MIN_CALLBACK_DATA_BYTES}-{MAX_CALLBACK_DATA_BYTES} bytes",
                permanent=True,
            )


def _check_ref(ref: ChatRef) -> None:
    if ref.channel != TELEGRAM:
        raise ValueError(f"TelegramChannel cannot send to channel {ref.channel!r}")
