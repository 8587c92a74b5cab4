"""The aiohttp application factory: routes, middleware, and clients opened in `cleanup_ctx`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from arq.connections import ArqRedis
from pywa_async.client import WhatsApp
from telegram import Bot

from ava_bot import health
from ava_bot.chatgate import make_chat_gate
from ava_bot.http import WEBHOOK_MAX_BYTES, body_middleware, make_error_middleware, portal_error_page
from ava_bot.keys import REDIS, SERVICES, SETTINGS
from ava_bot.settings import Settings
from ava_bot.wiring import (
    Resources,
    Services,
    build_billing,
    build_eraser,
    build_links,
    build_originals,
    build_s3,
    build_store,
    open_photo_pipeline,
    open_resources,
    open_services,
    whatsapp_status,
)
from ava_bot.worker import create_worker
from billing.service import BillingService
from billing.webhook import StripeWebhook, setup_stripe_webhook
from channels.telegram import TELEGRAM, TelegramChannel, setup_telegram_webhook
from channels.web import WebChannel, setup_web_chat
from channels.whatsapp import WHATSAPP, WhatsAppChannel, setup_whatsapp_webhook
from core.delivery import set_reachable
from core.messages import ChatRef
from core.ports import Entitlements, LLMProvider
from imaging.library import StoredPhotoLibrary
from imaging.providers.base import ImageProvider
from imaging.s3 import S3Connection
from portal.account import setup_account
from portal.adult import setup_adult
from portal.auth import current_user_id
from portal.billing import setup_billing_pages
from portal.chat import message_event, setup_chat, signed_in_user
from portal.csrf import require_csrf
from portal.erasure import setup_erasure
from portal.gallery import setup_gallery
from portal.legal import setup_legal
from portal.photos import setup_photo_routes
from portal.setup import setup_portal
from portal.throttle import SignInLimits

logger = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def serve_worker(
    settings: Settings,
    resources: Resources,
    services: Services,
    image_provider: ImageProvider | None,
    s3: S3Connection | None = None,
) -> AsyncIterator[None]:
    """Run the arq worker inside this process for the block (the single-process `ava-bot dev`)."""
    # Tortoise is initialised by the caller, in the same cleanup_ctx, before the worker starts (LIBRARY-NOTES).
    async with open_photo_pipeline(settings, services, provider=image_provider, s3=s3) as pipeline:
        worker = create_worker(settings, resources, services, pipeline, in_process=True)
        task = asyncio.create_task(worker.async_run(), name="arq-worker")
        logger.info("in-process worker started")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            # Jobs still running (e.g. the start-up sweeps) are cancelled by close(); arq re-runs
            # interrupted jobs and every job is idempotent, so their cancellation is expected here.
            with contextlib.suppress(asyncio.CancelledError):
                await worker.close()


async def create_app(
    settings: Settings,
    *,
    redis: ArqRedis | None = None,
    own_database: bool = True,
    run_worker: bool = False,
    llm: LLMProvider | None = None,
    entitlements: Entitlements | None = None,
    image_provider: ImageProvider | None = None,
) -> web.Application:
    """Build the web application.

    `run_worker=True` also runs the arq worker inside this process (the single-process `ava-bot dev`);
    `redis` / `own_database` inject clients the caller owns (dev mode and tests); `llm` / `entitlements` /
    `image_provider` replace the configured implementations (tests).
    """
    app = web.Application(
        middlewares=[make_error_middleware(page=portal_error_page), body_middleware],
        client_max_size=WEBHOOK_MAX_BYTES,
    )
    app[SETTINGS] = settings
    # Plans load (and a bad plans file stops start-up) before anything opens; they are synced at start.
    billing = build_billing(settings, photos_left=lambda uid: app[SERVICES].entitlements.remaining(uid, "photo"))
    # One S3 client for the process (None: photos under MEDIA_DIR), open before the in-process worker starts.
    s3 = build_s3(settings)
    if s3 is not None:

        async def s3_ctx(app: web.Application) -> AsyncIterator[None]:
            async with s3:
                yield

        app.cleanup_ctx.append(s3_ctx)

    async def resources_ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_resources(
            settings, redis=redis, own_database=own_database, allow_fake_redis=run_worker
        ) as resources:
            app[REDIS] = resources.redis
            async with open_services(settings, resources.redis, llm=llm, entitlements=entitlements) as services:
                app[SERVICES] = services
                if not run_worker:
                    yield
                    return
                async with serve_worker(settings, resources, services, image_provider, s3):
                    yield

    app.cleanup_ctx.append(resources_ctx)

    async def billing_ctx(app: web.Application) -> AsyncIterator[None]:
        await billing.sync_plans()  # every start brings the Plan table in line with the plans file
        yield
        await billing.aclose()

    app.cleanup_ctx.append(billing_ctx)
    health.setup(app)
    # Routes must exist before start-up; clients only exist inside cleanup_ctx, so the portal gets getters.
    links = build_links(settings)
    https = settings.effective_public_base_url.startswith("https://")
    setup_portal(
        app,
        links=links,
        web_channel=WebChannel.name,
        secure_cookies=https,
        hsts=https and settings.is_production,
        redis=lambda: app[REDIS],  # sessions: the process's Redis (the in-process fakeredis in `dev`)
        limiter=lambda: app[SERVICES].limiter,
        limits=SignInLimits(
            signin_per_ip=settings.signin_per_ip_per_15min,
            signin_per_account=settings.signin_per_account_per_15min,
            signup_per_ip=settings.signup_per_ip_per_hour,
        ),
        trusted_proxies=settings.trusted_proxy_networks,
        password_hash_concurrency=settings.password_hash_concurrency,
        session_max_age=settings.session_max_age_seconds,
        telegram_bot=settings.telegram_bot_username if settings.telegram_bot_token is not None else None,
        whatsapp_number=settings.whatsapp_number if settings.whatsapp_enabled else None,
    )
    setup_web_chat(
        app,
        inbox=lambda: app[SERVICES].inbox,
        redis=lambda: app[REDIS],
        session_user=signed_in_user,
        require_csrf=require_csrf,
        message_view=message_event,
        gate=make_chat_gate(lambda: app[SERVICES].entitlements),
        streams_per_user=settings.chat_streams_per_user,
    )
    library = StoredPhotoLibrary(build_store(settings, s3), build_originals(settings, s3))
    setup_photo_routes(app, links=links, library=library, session_user=current_user_id)
    setup_gallery(app, library=library)
    setup_adult(app)
    setup_account(app, billing=lambda: billing, inbox=lambda: app[SERVICES].inbox)
    setup_chat(app, inbox=lambda: app[SERVICES].inbox)  # Ava greets first on an empty chat
    eraser = build_eraser(settings, s3=s3, cancel_subscription=billing.cancel_immediately)
    setup_erasure(app, eraser=lambda: eraser)
    setup_legal(app)
    setup_billing_routes(app, settings, billing)
    if settings.whatsapp_enabled:
        setup_whatsapp_routes(app, settings)
    if settings.telegram_bot_token is not None and settings.telegram_webhook_secret is not None:
        setup_telegram_routes(app, settings.telegram_webhook_secret.get_secret_value())
    return app


def setup_billing_routes(app: web.Application, settings: Settings, billing: BillingService) -> None:
    """The subscribe pages, and `POST /billing/webhook` when Stripe and its webhook secret are configured."""
    setup_billing_pages(app, billing=billing, public_base_url=settings.effective_public_base_url)
    secret = settings.stripe_webhook_secret.get_secret_value() if settings.stripe_webhook_secret else ""
    if billing.stripe_api is not None and secret:
        webhook = StripeWebhook(
            secret=secret,
            stripe_api=billing.stripe_api,
            schedule=lambda user_id: app[SERVICES].queue.schedule(user_id),
            public_base_url=settings.effective_public_base_url,
        )
        setup_stripe_webhook(app, webhook)


def setup_telegram_routes(app: web.Application, secret: str) -> None:
    """`POST /webhooks/telegram`, on the services' Telegram adapter (built in the cleanup_ctx)."""

    def bot() -> Bot:
        channel = app[SERVICES].channels[TELEGRAM]
        assert isinstance(channel, TelegramChannel)
        return channel.bot

    async def on_blocked(ref: ChatRef, blocked: bool) -> None:
        await set_reachable(ref, not blocked)

    setup_telegram_webhook(app, secret=secret, inbox=lambda: app[SERVICES].inbox, bot=bot, on_blocked=on_blocked)


def setup_whatsapp_routes(app: web.Application, settings: Settings) -> None:
    """`GET`/`POST /webhooks/whatsapp`, on the services' WhatsApp adapter (built in the cleanup_ctx)."""

    def whatsapp() -> WhatsApp:
        channel = app[SERVICES].channels[WHATSAPP]
        assert isinstance(channel, WhatsAppChannel)
        return channel.wa

    token = settings.whatsapp_verify_token
    setup_whatsapp_webhook(
        app,
        wa=whatsapp,
        verify_token=token.get_secret_value() if token is not None else "",
        inbox=lambda: app[SERVICES].inbox,
        on_status=whatsapp_status,
    )
