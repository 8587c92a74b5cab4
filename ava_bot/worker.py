"""arq worker: settings built from `Settings` by the same builders as the web app."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import arq.worker
from arq.cron import cron
from arq.worker import Function, Worker, func
from redis.exceptions import RedisError

from ava_bot import jobs
from ava_bot.queueing import DRAIN_JOB
from ava_bot.settings import Settings
from ava_bot.wakeup import wake_on_enqueue
from ava_bot.wiring import Resources, Services
from imaging.jobs import PHOTO_JOB_TIMEOUT, photo_cron_jobs, photo_functions
from imaging.pipeline import PhotoPipeline

logger = logging.getLogger(__name__)

#: Errors of a Redis that is down or restarting (a poll only talks to Redis: connection errors surface as
#: ConnectionError, TimeoutError or, inside arq's WATCH, WatchError); the worker waits this long and polls again.
REDIS_DOWN = (RedisError, OSError)
REDIS_RETRY_SECONDS = 1.0
#: Seconds between polls of the queue. A job due now starts at once on a wake-up (`ava_bot.wakeup`); the poll is
#: the fallback (a lost wake-up, deferred jobs and retries), so it need not be short.
POLL_DELAY = 0.5


def job_functions(settings: Settings | None = None) -> list[Function]:
    """Every job the worker runs (time limits from `settings`, else the defaults)."""
    photo_timeout = settings.photo_job_timeout_seconds if settings is not None else PHOTO_JOB_TIMEOUT
    return [
        func(jobs.ping, name="ping"),
        # A drain job never asks arq for a retry: failed turns and sends are retried by continuation jobs.
        func(jobs.run_turn, name=DRAIN_JOB, keep_result=0, max_tries=3),
        *photo_functions(timeout=photo_timeout),
    ]


def worker_settings(
    settings: Settings, resources: Resources, services: Services, pipeline: PhotoPipeline
) -> dict[str, Any]:
    """Keyword arguments for `arq.Worker` (the `WorkerSettings` of this deployment)."""

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx["settings"] = settings
        ctx["resources"] = resources
        ctx["services"] = services
        ctx["photo_pipeline"] = pipeline
        ctx.setdefault("turn_stuck_after", timedelta(seconds=settings.turn_stuck_after_seconds))
        ctx.setdefault("photo_stuck_after", settings.photo_stuck_after_seconds)

    every = settings.sweep_every_seconds
    return {
        "functions": job_functions(settings),
        "cron_jobs": [
            cron(jobs.sweep_turns, name="sweep_turns", second=set(range(0, 60, every)), run_at_startup=True),
            cron(jobs.sweep_used_tokens, name="sweep_used_tokens", minute={17}, second={30}),
            *photo_cron_jobs(every_seconds=every, timeout=min(60, settings.job_timeout_seconds)),
        ],
        "redis_pool": resources.redis,
        "on_startup": on_startup,
        "max_jobs": settings.worker_max_jobs,
        "poll_delay": POLL_DELAY,
        "job_timeout": settings.job_timeout_seconds,
        # SIGTERM: stop taking jobs, let running ones finish this long, then cancel them (arq runs them again).
        "job_completion_wait": settings.shutdown_grace_seconds,
        "keep_result": 60,
    }


def create_worker(
    settings: Settings,
    resources: Resources,
    services: Services,
    pipeline: PhotoPipeline,
    *,
    in_process: bool = False,
    **overrides: Any,
) -> Worker:
    """Build the arq worker; `in_process=True` for one sharing a loop with the web app (no signal handlers)."""
    options = worker_settings(settings, resources, services, pipeline) | overrides
    if in_process:  # run with `await worker.async_run()` inside the caller's loop; the caller handles signals
        options["handle_signals"] = False
    # Through `arq.worker.create_worker`, looked up now: Sentry's arq integration wraps the job functions there
    # (and silences arq's own failure log), so a bare `Worker(...)` would report no failed job at all.
    return wake_on_enqueue(ride_out_redis_outages(arq.worker.create_worker(options)))


def ride_out_redis_outages(worker: Worker) -> Worker:
    """Keep `worker` running while Redis is unreachable: arq ends its main loop (and the process) on the first
    failed poll; this logs it and polls again. Jobs lost with Redis are scheduled again by the sweepers.

    (A connection lost exactly between arq's claim of a job slot and its WATCH keeps that slot taken: arq does
    not release it on that path. Rare, and at most one of `max_jobs` per such failure.)"""
    poll = worker._poll_iteration

    async def guarded_poll() -> None:
        try:
            await poll()
        except REDIS_DOWN as exc:
            logger.warning("Redis unreachable (%s); polling again in %.0f s", type(exc).__name__, REDIS_RETRY_SECONDS)
            await asyncio.sleep(REDIS_RETRY_SECONDS)

    worker._poll_iteration = guarded_poll  # type: ignore[method-assign]
    return worker
