"""Helpers shared by end-to-end tests: a running in-process worker and a wired service stack."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from arq.connections import ArqRedis

from ava_bot.settings import Settings
from ava_bot.wiring import Resources, Services, open_photo_pipeline
from ava_bot.worker import create_worker
from core.models import Avatar, ChannelIdentity, Direction, Message, Mode, SetupStep, User
from imaging.providers.base import ImageProvider


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings,
    redis: ArqRedis,
    services: Services,
    *,
    provider: ImageProvider | None = None,
    max_jobs: int | None = None,
    **ctx: Any,
) -> AsyncIterator[None]:
    """Run the real arq worker (same functions and wiring as production) in this loop for the block."""
    resources = Resources(settings=settings, redis=redis)
    options: dict[str, Any] = {"poll_delay": 0.01, "ctx": dict(ctx)}
    if max_jobs is not None:
        options["max_jobs"] = max_jobs
    async with open_photo_pipeline(settings, services, provider=provider) as pipeline:
        worker = create_worker(settings, resources, services, pipeline, in_process=True, **options)
        task = asyncio.create_task(worker.async_run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await asyncio.gather(*worker.tasks.values(), return_exceptions=True)


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 15.0, what: str = "condition") -> None:
    """Poll `check` until it is true or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def ready_user(chat_id: str, *, channel: str = "web", mode: Mode = Mode.SECRETARY) -> User:
    """A user who finished onboarding and setup (approved avatar, no reference photo), on `channel`."""
    now = datetime.now(UTC)
    user = await User.create(adult_confirmed_at=now, terms_accepted_at=now, setup_step=SetupStep.DONE, mode=mode)
    await ChannelIdentity.create(user=user, channel=channel, external_user_id=chat_id)
    await Avatar.create(
        user=user,
        name="Mia",
        gender="woman",
        age=27,
        nationality="Italian",
        appearance="long dark hair, green eyes",
        personality="playful",
        approved_at=now,
    )
    return user


async def stamped_button(data: str, **where: Any) -> str | None:
    """What pressing the button `data` sends: the stamped data of the latest outbound question offering it."""
    rows = await Message.filter(direction=Direction.OUTBOUND, **where).order_by("-id")
    for row in rows:
        payload = row.payload or {}
        for offered in payload.get("choices", []) if payload.get("type") == "choices" else []:
            if offered["data"].partition(".")[2] == data:
                return str(offered["data"])
    return None


class _Statements(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def statements() -> Iterator[list[logging.LogRecord]]:
    """The SQL statements run in the block (Tortoise logs each at DEBUG, with its parameters)."""
    log = logging.getLogger("tortoise.db_client")
    handler, level = _Statements(), log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        log.setLevel(level)
        log.removeHandler(handler)
