"""`channels.whatsapp.parse_webhook` and `parse_statuses` against recorded Cloud API webhook bodies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pywa import WhatsApp
from pywa.types import CallbackButton, CallbackSelection, Message, MessageStatus

from channels.whatsapp import parse_statuses, parse_webhook
from core.messages import ChatRef

PAYLOADS = Path(__file__).parent.parent / "payloads" / "whatsapp"
WAMID_TEXT = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="


def load(name: str) -> dict[str, Any]:
    """A recorded webhook body (a fresh copy: tests may change it)."""
    return dict(json.loads((PAYLOADS / f"{name}.json").read_text()))


def test_text_message() -> None:
    """A text message is keyed by its wamid and addressed to the sender's number."""
    [msg] = parse_webhook(load("text"))
    assert msg.ref == ChatRef("whatsapp", "16505551234")
    assert msg.message_id == f"wamid:{WAMID_TEXT}"
    assert msg.text == "Does it come in another color?"
    assert msg.choice is None
    assert msg.raw == {
        "wamid": WAMID_TEXT,
        "phone_number_id": "106540352242922",
        "wa_id": "16505551234",
        "bsuid": "US.13491208655302741918",
        "context_wamid": None,
    }


def test_button_reply_is_a_choice() -> None:
    """A pressed reply button gives its id as the choice and no text."""
    [msg] = parse_webhook(load("button_reply"))
    assert msg.text is None
    assert msg.choice == "style:realistic"
    assert msg.message_id == "wamid:wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUZCNjcyMUI1RjE0RjY4MUQ3RAA="
    assert msg.raw["context_wamid"] == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3NjQ3QjY3RjM5QzE2QkU4QTcA"


def test_list_reply_is_a_choice() -> None:
    """A chosen list row gives its id as the choice."""
    [msg] = parse_webhook(load("list_reply"))
    assert msg.ref == ChatRef("whatsapp", "16505551234")
    assert msg.text is None
    assert msg.choice == "hair:auburn"


def test_template_quick_reply_is_a_choice() -> None:
    """A template's quick-reply button gives its payload as the choice."""
    [msg] = parse_webhook(load("template_quick_reply"))
    assert msg.text is None
    assert msg.choice == "resume:chat"


def test_username_user_is_addressed_by_bsuid() -> None:
    """A user who hides their number behind a username is addressed by their business-scoped user id."""
    [msg] = parse_webhook(load("text_username_user"))
    assert msg.ref == ChatRef("whatsapp", "IN.1648738043044942")
    assert msg.raw["wa_id"] is None
    assert msg.text == "hi, is this Ava?"


def test_batched_body_keeps_order_and_skips_reactions() -> None:
    """Several messages in one body come out in order; a reaction in between is skipped."""
    msgs = parse_webhook(load("batch_two_users"))
    assert [(m.ref.chat_id, m.text) for m in msgs] == [("16505551234", "first"), ("5215512345678", "hola Ava")]
    assert msgs[1].raw["bsuid"] == "MX.20394857201938475610"


def test_media_is_skipped() -> None:
    """An image (even with a caption) is not a text turn."""
    assert parse_webhook(load("image")) == []


def test_group_message_is_skipped() -> None:
    """Messages in WhatsApp groups are not private conversations."""
    payload = load("text")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["group_id"] = "120363025246125486@g.us"
    assert parse_webhook(payload) == []


def test_status_body_has_no_messages() -> None:
    """A status callback contains no user messages."""
    assert parse_webhook(load("statuses")) == []


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"object": "whatsapp_business_account", "entry": "nope"},
        {"entry": [{"changes": [{"field": "messages", "value": {"messages": [{"type": "text"}]}}]}]},
        {"entry": [{"changes": [{"field": "account_update", "value": {"messages": [{"id": "x", "from": "1"}]}}]}]},
    ],
)
def test_malformed_bodies_give_nothing(payload: dict[str, Any]) -> None:
    """Broken or foreign bodies parse to nothing instead of raising."""
    assert parse_webhook(payload) == []
    assert parse_statuses(payload) == []


def test_statuses() -> None:
    """Delivery and read callbacks give (wamid, status, None)."""
    assert parse_statuses(load("statuses")) == [
        ("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3NjQ3QjY3RjM5QzE2QkU4QTcA", "delivered", None),
        ("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDMTJFOUI2RjRCODk5MEQ1OTIA", "read", None),
    ]


def test_failed_status_carries_the_error_code() -> None:
    """A failed send reports its first error code as a string (131047: the 24-hour window closed)."""
    assert parse_statuses(load("status_failed")) == [
        ("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJBQjc3RkI0QzE3NTVEN0UxQzkA", "failed", "131047")
    ]


def test_message_bodies_have_no_statuses() -> None:
    """A message body contains no status callbacks."""
    assert parse_statuses(load("text")) == []


@pytest.fixture(scope="module")
def pywa_client() -> WhatsApp:
    """A pywa client that never serves nor calls the API: only its update parsing is used."""
    return WhatsApp(phone_id="106540352242922", token="unused", server=None, verify_token="unused")


@pytest.mark.parametrize(
    ("name", "pywa_type"),
    [
        ("text", Message),
        ("text_username_user", Message),
        ("button_reply", CallbackButton),
        ("template_quick_reply", CallbackButton),
        ("list_reply", CallbackSelection),
    ],
)
def test_pywa_reads_the_recorded_payloads_the_same_way(pywa_client: WhatsApp, name: str, pywa_type: Any) -> None:
    """pywa (which the adapter sends with) agrees with our parser on wamid, sender and choice."""
    payload = load(name)
    theirs = pywa_type.from_update(client=pywa_client, update=payload)
    [ours] = parse_webhook(payload)
    assert ours.raw["wamid"] == theirs.id
    assert (ours.raw["wa_id"], ours.raw["bsuid"]) == (theirs.from_user.wa_id, theirs.from_user.bsuid)
    assert ours.choice == getattr(theirs, "data", None)


def test_pywa_reads_the_recorded_status(pywa_client: WhatsApp) -> None:
    """pywa parses the recorded delivery status to the same wamid and status."""
    theirs = MessageStatus.from_update(client=pywa_client, update=load("statuses"))
    assert parse_statuses(load("statuses"))[0][:2] == (theirs.id, theirs.status.value)
