"""The worker's arq settings follow `Settings`: job time limits, sweep cadence and staleness, shutdown grace; and a
worker rides out a Redis that cannot be reached instead of ending its process."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from arq.connections import RedisSettings, create_pool
from arq.worker import Worker, func
from pydantic import ValidationError

from ava_bot.worker import ride_out_redis_outages, worker_settings
from tests.reliability.faults import own_redis


def test_worker_settings_follow_the_settings(make_settings: Any) -> None:
    """Job timeouts, sweep cadence, stuck thresholds and the SIGTERM grace come from Settings."""
    settings = make_settings(
        job_timeout_seconds=7,
        photo_job_timeout_seconds=9,
        sweep_every_seconds=5,
        turn_stuck_after_seconds=4,
        photo_stuck_after_seconds=6,
        shutdown_grace_seconds=11,
        worker_max_jobs=7,
    )
    resources = SimpleNamespace(redis=None)  # only handed to arq and kept for on_startup
    options = worker_settings(settings, resources, None, None)  # type: ignore[arg-type]
    assert options["job_timeout"] == 7 and options["job_completion_wait"] == 11
    assert options["max_jobs"] == 7
    photo = next(f for f in options["functions"] if f.name == "generate_photo")
    assert photo.timeout_s == 9
    crons = {c.name: c for c in options["cron_jobs"]}
    assert crons["sweep_turns"].second == set(range(0, 60, 5)) == crons["sweep_photos"].second
    assert crons["sweep_photos"].timeout_s == 7  # never above the job timeouts: it would delay arq's re-runs
    ctx: dict[str, Any] = {}
    asyncio.run(options["on_startup"](ctx))
    assert ctx["turn_stuck_after"] == timedelta(seconds=4) and ctx["photo_stuck_after"] == 6


def test_jobs_at_once_default_to_fifty_and_must_be_positive(make_settings: Any) -> None:
    """A worker runs 50 jobs at once unless WORKER_MAX_JOBS says otherwise; 0 (a worker that runs nothing) and
    absurd values are refused at start-up."""
    resources = SimpleNamespace(redis=None)
    assert worker_settings(make_settings(), resources, None, None)["max_jobs"] == 50  # type: ignore[arg-type]
    for wrong in (0, -5, 1001):
        with pytest.raises(ValidationError):
            make_settings(worker_max_jobs=wrong)


def test_sweep_cadence_must_divide_a_minute(make_settings: Any) -> None:
    """A sweep interval that does not divide 60 is refused at start-up."""
    with pytest.raises(ValidationError):
        make_settings(sweep_every_seconds=7)


async def test_a_worker_rides_out_a_redis_outage() -> None:
    """arq would end its main loop on the first failed poll; the guarded worker polls again and, once Redis is
    back, runs jobs again."""

    async def ping(ctx: dict[str, Any]) -> str:
        return "pong"

    async with own_redis() as server:
        pool = await create_pool(RedisSettings.from_dsn(server.url))
        worker = ride_out_redis_outages(
            Worker(functions=[func(ping, name="ping")], redis_pool=pool, handle_signals=False, poll_delay=0.01)
        )
        task = asyncio.create_task(worker.async_run())
        try:
            first = await pool.enqueue_job("ping")
            assert first is not None and await first.result(timeout=10) == "pong"  # polling
            server.stop()
            await asyncio.sleep(2.5)  # the outage: several failed polls
            assert not task.done(), task.exception() if task.done() else "ended"
            await server.start()
            job = await pool.enqueue_job("ping")
            assert job is not None and await job.result(timeout=10) == "pong"
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await pool.aclose()
