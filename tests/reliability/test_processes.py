"""The process harness itself: real web and worker processes answer a Telegram message end to end."""

from __future__ import annotations

import re
import signal

from tests.reliability.conftest import Fakes
from tests.reliability.drive import TelegramChat, all_answered, entitled_user, replies
from tests.reliability.processes import AvaStack, leaks, secrets_of
from tests.support import eventually

CHAT = 4100


async def test_web_and_worker_answer_a_message(ava_stack: AvaStack, fakes: Fakes) -> None:
    """A message posted to a real web process is answered once by a real worker, and no secret is printed."""
    user = await entitled_user(str(CHAT))
    (web,), (worker,) = await ava_stack.start(webs=1, workers=1)
    chat = TelegramChat(web.url, fakes.telegram_webhook_secret, CHAT)
    assert await chat.say("hello there") == 200
    await eventually(lambda: all_answered(user.id, 1), timeout=20, what="the reply")
    texts = [r.text for r in await replies(user.id)]
    assert texts == ["echo: hello there"]
    await eventually(lambda: _sent(fakes, 1), what="the Telegram send")
    assert await worker.stop() == 0
    assert await web.stop() == 0
    assert "Traceback" not in worker.output + web.output
    # Both froze their startup objects out of garbage collection (`ava_bot.runtime`) before taking work.
    for process in (web, worker):
        frozen = re.search(r"(\d+) startup objects frozen out of garbage collection", process.output)
        assert frozen is not None and int(frozen.group(1)) > 50_000, process.name
        # ... and run on uvloop, the default EVENT_LOOP (the loop they run on, not the setting, is logged).
        assert "starting on the uvloop event loop" in process.output, process.name
    ava_stack.assert_no_secrets()


async def test_the_asyncio_event_loop_answers_a_message_too(ava_stack: AvaStack, fakes: Fakes) -> None:
    """EVENT_LOOP=asyncio (the fallback from uvloop): both processes run on Python's own loop, answer a message
    end to end and stop cleanly on SIGTERM."""
    user = await entitled_user(str(CHAT + 1))
    (web,), (worker,) = await ava_stack.start(webs=1, workers=1, extra_env={"EVENT_LOOP": "asyncio"})
    chat = TelegramChat(web.url, fakes.telegram_webhook_secret, CHAT + 1)
    assert await chat.say("plain asyncio") == 200
    await eventually(lambda: all_answered(user.id, 1), timeout=20, what="the reply")
    assert [r.text for r in await replies(user.id)] == ["echo: plain asyncio"]
    assert await worker.stop() == 0
    assert await web.stop() == 0
    for process in (web, worker):
        assert "starting on the asyncio event loop" in process.output, process.name
        assert "uvloop" not in process.output, process.name
    assert "Traceback" not in worker.output + web.output


async def _sent(fakes: Fakes, count: int) -> bool:
    return len(fakes.telegram.calls_to("sendMessage")) >= count


async def test_killed_process_is_reported(ava_stack: AvaStack) -> None:
    """SIGKILL ends a process at once and its exit status says so."""
    worker = await ava_stack.start_worker()
    worker.kill()
    assert worker.returncode == -signal.SIGKILL


def test_secret_scan_finds_partial_leaks() -> None:
    """The scan finds whole secrets, passwords inside URLs and a long enough part of a secret."""
    env = {"LLM_API_KEY": "sk-abcdefghijklmnopqrstuvwxyz", "DATABASE_URL": "postgres://u:pa55w0rd-very-long@h:1/d"}
    found = secrets_of(env)
    assert found == ["pa55w0rd-very-long", "sk-abcdefghijklmnopqrstuvwxyz"]
    assert leaks("dsn=postgres://u:pa55w0rd-very...", found) == ["pa55w0rd-very-long"]
    assert leaks("key ghijklmnopqrst seen", found) == ["sk-abcdefghijklmnopqrstuvwxyz"]
    assert leaks("nothing here", found) == []
