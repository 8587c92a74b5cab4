"""A worker process killed with SIGKILL in the middle of a turn or of a photo job: after a new worker starts,
the message is answered exactly once, the photo is made and announced exactly once, and charged once."""

from __future__ import annotations

import pytest

from imaging.models import Photo, PhotoKindChoice, PhotoStatus
from tests.reliability.conftest import Fakes
from tests.reliability.drive import TelegramChat, all_answered, entitled_user, photo_user, photos_done
from tests.reliability.faults import (
    FAST_RECOVERY,
    assert_each_reply_sent_once,
    assert_inbound_done_once,
    assert_one_ready_photo,
    llm_busy,
    telegram_texts,
)
from tests.reliability.processes import AvaStack
from tests.support import eventually

CHAT = 4200
PHOTO_CHAT = 4201


@pytest.mark.timeout(120)
async def test_worker_killed_mid_turn_answers_once_after_restart(ava_stack: AvaStack, fakes: Fakes) -> None:
    """SIGKILL while the LLM answers: the next worker runs the turn again and the user gets exactly one reply."""
    ava_stack.env.update(FAST_RECOVERY)
    user = await entitled_user(str(CHAT))
    web = await ava_stack.start_web()
    doomed = await ava_stack.start_worker()
    fakes.llm.say("the answer the killed worker never got", delay=6)
    chat = TelegramChat(web.url, fakes.telegram_webhook_secret, CHAT)
    assert await chat.say("are you there?") == 200
    await llm_busy(fakes.llm)
    doomed.kill()
    await ava_stack.start_worker()
    await eventually(lambda: all_answered(user.id, 1), timeout=45, what="the turn run again")

    await assert_inbound_done_once(user.id, 1)
    rows = await assert_each_reply_sent_once(user.id, fakes.telegram, CHAT)
    assert [r.text for r in rows] == ["echo: are you there?"]
    assert len(fakes.llm.completions()) == 2  # the killed attempt and the one that counted
    # The service goes on normally for this user.
    assert await chat.say("still there?") == 200
    await eventually(lambda: all_answered(user.id, 2), timeout=15, what="the next reply")
    assert telegram_texts(fakes.telegram, CHAT) == ["echo: are you there?", "echo: still there?"]
    await ava_stack.stop_all()
    ava_stack.assert_no_secrets()


@pytest.mark.timeout(120)
async def test_worker_killed_mid_photo_makes_one_photo_after_restart(ava_stack: AvaStack, fakes: Fakes) -> None:
    """SIGKILL while the image provider works: the next worker makes the photo; one photo, one notice, one charge."""
    ava_stack.env.update(FAST_RECOVERY)
    user = await photo_user(str(PHOTO_CHAT), ava_stack.env_path("MEDIA_DIR"))
    web = await ava_stack.start_web()
    doomed = await ava_stack.start_worker()
    fakes.replicate.hang_next()  # the first prediction never finishes: the worker is inside the photo job
    fakes.llm.call_tool("send_photo", {"scene_description": "on a beach at sunset"}, text="One moment 📸")
    chat = TelegramChat(web.url, fakes.telegram_webhook_secret, PHOTO_CHAT)
    assert await chat.say("send me a photo") == 200

    async def generating() -> bool:
        photo = await Photo.get_or_none(user_id=user.id, kind=PhotoKindChoice.PHOTO)
        return photo is not None and photo.status == PhotoStatus.GENERATING and len(fakes.replicate.created) == 1

    await eventually(generating, timeout=20, what="the photo job at the provider")
    doomed.kill()
    await ava_stack.start_worker()
    await eventually(lambda: photos_done(user.id, 1), timeout=45, what="the photo made by the new worker")
    await eventually(lambda: all_answered(user.id, 1), timeout=15, what="the notice delivered")

    await assert_inbound_done_once(user.id, 1)
    await assert_one_ready_photo(user.id)
    await assert_each_reply_sent_once(user.id, fakes.telegram, PHOTO_CHAT)
    assert len(fakes.replicate.created) == 2  # the hung prediction and the one that counted
    await ava_stack.stop_all()
    ava_stack.assert_no_secrets()
