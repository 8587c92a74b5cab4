"""arq worker: settings built from `Settings` by the same builders as the web app."""

from __future__ import annotations

import logging
from typing import Any

from arq.cron import cron
from arq.worker import Function, Worker, func

from ava_bot import jobs
from ava_bot.queueing import DRAIN_JOB
from ava_bot.settings import Settings
from ava_bot.wiring import Resources, Services
from imaging.jobs import photo_cron_jobs, photo_functions
from imaging.pipeline import PhotoPipeline

logger = logging.getLogger(__name__)


def job_functions() -> list[Function]:
    """Every job the worker runs."""
    return [
        func(jobs.ping, name="ping"),
        # A drain job never asks arq for a retry: failed turns and sends are retried by continuation jobs.
        func(jobs.run_turn, name=DRAIN_JOB, keep_result=0, max_tries=3),
        *photo_functions(),
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

    return {
        "functions": job_functions(),
        "cron_jobs": [
            cron(jobs.sweep_turns, name="sweep_turns", second={0}, run_at_startup=True),
            cron(jobs.sweep_used_tokens, name="sweep_used_tokens", minute={17}, second={30}),
            *photo_cron_jobs(),
        ],
        "redis_pool": resources.redis,
        "on_startup": on_startup,
        "max_jobs": 20,
        "poll_delay": 0.05,  # arq's 0.5 s default would add up to half a second to every turn and photo
        "job_timeout": 120,
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
        return Worker(handle_signals=False, **options)
    return Worker(**options)
