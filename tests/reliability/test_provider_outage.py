"""The LLM (5xx on every call) and the image provider (connections cut by a proxy) down while the real processes
run: the users affected are told once, dead letters are recorded (and listed by `ava-bot deadletters list`), the
photo unit is refunded, other users keep being answered, and everything works again once the provider is back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from billing.models import QuotaCharge
from core.models import DeadLetter, Direction, Message, MessageStatus
from core.persona import photo_failed_line, turn_failed_line
from imaging.models import Photo, PhotoKindChoice, PhotoStatus
from tests.reliability.conftest import Fakes
from tests.reliability.drive import TelegramChat, all_answered, entitled_user, photo_user, photos_done
from tests.reliability.faults import FAST_RECOVERY, TcpProxy, assert_each_reply_sent_once, telegram_texts
from tests.reliability.processes import AvaStack
from tests.support import eventually

DOWN, BYSTANDER, LATE = 4500, 4501, 4502
PHOTO_CHAT = 4510
#: More failures than the turn attempts and the OpenAI client's own retries can use up.
OUTAGE_ANSWERS = 200


@pytest.fixture
async def image_proxy(ava_stack: AvaStack, fakes: Fakes) -> AsyncIterator[TcpProxy]:
    """A TCP proxy in front of the fake Replicate; the stack's REPLICATE_BASE_URL goes through it."""
    target = urlsplit(fakes.replicate.url)
    proxy = await TcpProxy("127.0.0.1", target.port or 80).start()
    ava_stack.env["REPLICATE_BASE_URL"] = f"http://127.0.0.1:{proxy.port}"
    try:
        yield proxy
    finally:
        await proxy.stop()


@pytest.mark.timeout(120)
async def test_llm_outage_tells_users_records_dead_letters_and_recovers(ava_stack: AvaStack, fakes: Fakes) -> None:
    """Every LLM call 5xx: each user told once and a dead letter per message; back up: everyone answered."""
    ava_stack.env.update(FAST_RECOVERY, TURN_MAX_ATTEMPTS="2")
    down, bystander, late = [await entitled_user(str(c)) for c in (DOWN, BYSTANDER, LATE)]
    (web,), _ = await ava_stack.start(webs=1, workers=1)
    chats = {c: TelegramChat(web.url, fakes.telegram_webhook_secret, c) for c in (DOWN, BYSTANDER, LATE)}
    for _ in range(OUTAGE_ANSWERS):
        fakes.llm.fail(500)
    assert await chats[DOWN].say("hello?") == 200
    assert await chats[BYSTANDER].say("anyone?") == 200
    for user in (down, bystander):
        await eventually(lambda u=user: all_answered(u.id, 1), timeout=40, what=f"user {user.id} told")
    for user, chat_id in ((down, DOWN), (bystander, BYSTANDER)):
        inbound = await Message.get(user_id=user.id, direction=Direction.INBOUND)
        assert inbound.status == MessageStatus.FAILED
        assert telegram_texts(fakes.telegram, chat_id) == [turn_failed_line()]
        assert await DeadLetter.filter(job="run_turn", payload__contains={"message_id": inbound.id}).count() == 1
    listed = await ava_stack.run_cli("deadletters", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("run_turn") == 2 and "LLM error 500" in listed.stdout

    fakes.llm.plan.clear()  # the provider is back
    assert await chats[DOWN].say("and now?") == 200
    assert await chats[LATE].say("first time here") == 200
    await eventually(lambda: all_answered(down.id, 2), timeout=20, what="the reply after the outage")
    await eventually(lambda: all_answered(late.id, 1), timeout=20, what="another user's reply")
    assert telegram_texts(fakes.telegram, DOWN) == [turn_failed_line(), "echo: and now?"]
    assert telegram_texts(fakes.telegram, LATE) == ["echo: first time here"]
    for user, chat_id in ((down, DOWN), (bystander, BYSTANDER), (late, LATE)):
        await assert_each_reply_sent_once(user.id, fakes.telegram, chat_id)
    assert await DeadLetter.all().count() == 2
    await ava_stack.stop_all()
    ava_stack.assert_no_secrets()


@pytest.mark.timeout(120)
async def test_image_provider_outage_dead_letters_refunds_and_recovers(
    ava_stack: AvaStack, fakes: Fakes, image_proxy: TcpProxy
) -> None:
    """Replicate unreachable: the photo fails after its attempts, is dead-lettered and refunded, the user told
    once, chat goes on for others meanwhile; back up: the next photo is made and announced once."""
    ava_stack.env.update(FAST_RECOVERY)
    owner = await photo_user(str(PHOTO_CHAT), ava_stack.env_path("MEDIA_DIR"))
    bystander = await entitled_user(str(BYSTANDER))
    (web,), _ = await ava_stack.start(webs=1, workers=1)
    photo_chat = TelegramChat(web.url, fakes.telegram_webhook_secret, PHOTO_CHAT)
    other_chat = TelegramChat(web.url, fakes.telegram_webhook_secret, BYSTANDER)
    image_proxy.cut()
    fakes.llm.call_tool("send_photo", {"scene_description": "on a balcony"}, text="One moment 📸")
    assert await photo_chat.say("a photo please") == 200
    await eventually(lambda: all_answered(owner.id, 1), timeout=20, what="the photo turn")
    assert await other_chat.say("chatting meanwhile") == 200  # the photo retries must not hold others up
    await eventually(lambda: all_answered(bystander.id, 1), timeout=20, what="the bystander's reply")
    await eventually(lambda: photos_done(owner.id, 1), timeout=40, what="the photo given up")
    await eventually(lambda: all_answered(owner.id, 1), timeout=20, what="the failure notice sent")

    failed = await Photo.get(user_id=owner.id, kind=PhotoKindChoice.PHOTO)
    assert failed.status == PhotoStatus.FAILED
    assert await DeadLetter.filter(job="generate_photo", payload__contains={"photo_id": failed.id}).count() == 1
    assert telegram_texts(fakes.telegram, PHOTO_CHAT) == ["One moment 📸", photo_failed_line()]
    charge = await QuotaCharge.get(user_id=owner.id, kind="photo")
    assert charge.refunded_at is not None  # a photo that never came costs nothing
    listed = await ava_stack.run_cli("deadletters", "list")
    assert listed.returncode == 0 and "generate_photo" in listed.stdout, listed.stderr

    image_proxy.restore()
    fakes.llm.call_tool("send_photo", {"scene_description": "in the park"}, text="Here goes 📸")
    assert await photo_chat.say("try again?") == 200
    await eventually(lambda: photos_done(owner.id, 2), timeout=40, what="the photo after the outage")
    await eventually(lambda: all_answered(owner.id, 2), timeout=20, what="its notice sent")
    made = await Photo.filter(user_id=owner.id, kind=PhotoKindChoice.PHOTO).order_by("id")
    assert [p.status for p in made] == [PhotoStatus.FAILED, PhotoStatus.READY]
    notices = await Message.filter(user_id=owner.id, payload__contains={"photo_id": made[1].id}).count()
    assert notices == 1
    await assert_each_reply_sent_once(owner.id, fakes.telegram, PHOTO_CHAT)
    await assert_each_reply_sent_once(bystander.id, fakes.telegram, BYSTANDER)
    await ava_stack.stop_all()
    ava_stack.assert_no_secrets()
