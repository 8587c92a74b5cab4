"""The composition root's one builder module: every concrete implementation is chosen here, once.

`create_app` (aiohttp `cleanup_ctx`) and the worker (arq `ctx`) open the same resources and build the same
services through these functions, so web and worker are always wired identically. Development without API
keys gets clearly named offline implementations (demo LLM, placeholder images); production refuses to build
those. Entitlements are the billing ones everywhere (development users subscribe through the subscribe page's
development activation or `ava-bot grant`).

The photo path in one walk: the engine records a `Photo` through `imaging.service.PhotoService` (the core's
`PhotoRequests` port) -> the worker's `generate_photo` job runs `imaging.pipeline.PhotoPipeline` -> the
pipeline's terminal transition calls `TurnRunner.record_photo_event` in its transaction (the notice rows) ->
`DrainQueue.schedule` kicks the user's ordered delivery -> the channel sends a signed portal link ->
`portal.photos` serves the bytes to their owner through `imaging.library`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from arq.connections import ArqRedis
from pydantic import SecretStr
from telegram.error import TelegramError

from ava_bot.db import close_db, init_db
from ava_bot.erasure import CancelSubscription, Eraser
from ava_bot.errors import MissingSettingsError
from ava_bot.queueing import DrainQueue
from ava_bot.ratelimits import RedisRateLimiter
from ava_bot.redis import create_redis
from ava_bot.settings import Settings
from billing.entitlements import BillingEntitlements
from billing.plans import DEFAULT_PLANS_PATH, PlanConfig, load_plans, missing_price_ids
from billing.service import BillingService, PhotosLeft
from channels.telegram import TELEGRAM, TelegramChannel, build_bot
from channels.web import WebChannel
from channels.whatsapp.parse import WHATSAPP
from core.delivery import Deliverer, DeliveryConfig, record_platform_status
from core.engine import ConversationEngine, EngineConfig
from core.errors import ConfigError
from core.inbox import InboundLimit, Inbox
from core.llm import OfflineDemoLLM, OpenAICompatibleLLM
from core.messages import ChatRef
from core.ports import ActivityKind, Channel, Entitlements, LLMProvider, Moderation, QuotaVerdict, RateLimiter
from core.quota import photo_key
from core.safety import SafetyChecker
from core.turns import RunnerConfig, TurnRunner
from imaging.certs import create_dev_certificates
from imaging.models import Photo
from imaging.moderation import DEFAULT_LLAMA_GUARD_MODEL, DEFAULT_OPENAI_MODEL, LlamaGuardModeration, OpenAIModeration
from imaging.pipeline import PhotoPipeline
from imaging.provenance import ProvenanceSigner
from imaging.providers.base import ImageProvider
from imaging.providers.factory import ProviderConfig, create_image_provider
from imaging.safety import check_field
from imaging.service import PhotoService
from imaging.storage import LocalPhotoStore, PhotoStore
from portal.links import PortalLinks

if TYPE_CHECKING:  # each loaded only by a process configured to use it (see `build_whatsapp_channel`, `build_s3`)
    from billing.stripe_api import StripeApi
    from channels.whatsapp.channel import WhatsAppChannel
    from imaging.s3 import S3Connection

logger = logging.getLogger(__name__)

DEV_CERTS_DIR = Path("data/certs")


# -- resources ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resources:
    """Long-lived clients of one process."""

    settings: Settings
    redis: ArqRedis


@asynccontextmanager
async def open_resources(
    settings: Settings,
    *,
    redis: ArqRedis | None = None,
    own_database: bool = True,
    allow_fake_redis: bool = False,
) -> AsyncIterator[Resources]:
    """Open the ORM and Redis for one process and close what it opened on exit.

    `redis` injects an existing client (shared by web and worker in `dev`, or by tests); `own_database=False`
    leaves the ORM to the caller (the test harness initialises it once per session).
    """
    if own_database:
        await init_db(settings.effective_database_url)
    owned_redis = redis is None
    client = redis if redis is not None else await create_redis(settings, allow_fake=allow_fake_redis)
    try:
        yield Resources(settings=settings, redis=client)
    finally:
        if owned_redis:
            await client.aclose()
        if own_database:
            await close_db()


# -- conversation -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Services:
    """The application services of one process."""

    settings: Settings
    redis: ArqRedis
    links: PortalLinks
    inbox: Inbox
    engine: ConversationEngine
    runner: TurnRunner
    queue: DrainQueue
    photos: PhotoService
    llm: LLMProvider
    channels: dict[str, Channel]
    #: Both safety layers (the rules, and the moderation model when configured) for every text entering.
    safety: SafetyChecker
    #: Rate limits shared by every replica (Redis at REDIS_URL; in memory for the single-process `dev`).
    limiter: RateLimiter
    #: Subscriptions and quotas (the engine's paywall, the photo pipeline's charges, the web chat's 402).
    entitlements: Entitlements


def build_llm(settings: Settings) -> LLMProvider:
    """The OpenAI-compatible provider, or in development without a key the offline demo."""
    if settings.llm_api_key is not None:
        return OpenAICompatibleLLM(
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key.get_secret_value(),
            model=settings.llm_model,
            timeout=settings.llm_timeout_seconds,
        )
    if settings.is_production:
        raise ConfigError("LLM_API_KEY is required in production")
    return OfflineDemoLLM()


def build_entitlements(settings: Settings) -> Entitlements:
    """Subscriptions and quotas from the database, in every environment (there is no allow-all gate)."""
    return BillingEntitlements()


def plans_path(settings: Settings) -> Path:
    """PLANS_FILE; in development, when it does not exist, the repository's plans.toml (said in the log)."""
    if settings.plans_file.exists() or settings.is_production:
        return settings.plans_file
    logger.warning("development fallback: PLANS_FILE %s not found, using %s", settings.plans_file, DEFAULT_PLANS_PATH)
    return DEFAULT_PLANS_PATH


def build_plans(settings: Settings, *, environ: Mapping[str, str] | None = None) -> list[PlanConfig]:
    """The plans (the plans file, price ids from the environment), checked as `build_billing` checks them, with no
    Stripe client: the worker syncs them at start and never calls Stripe. Raises `ConfigError` on a bad plans file,
    and in production `MissingSettingsError` without STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET or a plan's price id.

    The default plan's price id is STRIPE_PRICE_ID (from Settings); other plans name their variable, read from
    `environ` (default: the process environment)."""
    env: dict[str, str | None] = dict(os.environ if environ is None else environ)
    env["STRIPE_PRICE_ID"] = settings.stripe_price_id
    plans = load_plans(plans_path(settings), env)
    if settings.is_production:
        webhook_secret = settings.stripe_webhook_secret
        missing = [] if _stripe_key(settings) else ["STRIPE_SECRET_KEY"]
        if webhook_secret is None or not webhook_secret.get_secret_value().strip():
            missing.append("STRIPE_WEBHOOK_SECRET")
        missing += missing_price_ids(plans)
        if missing:
            raise MissingSettingsError(missing)
    return plans


def _stripe_key(settings: Settings) -> str:
    return settings.stripe_secret_key.get_secret_value().strip() if settings.stripe_secret_key else ""


def build_billing(
    settings: Settings, *, environ: Mapping[str, str] | None = None, photos_left: PhotosLeft | None = None
) -> BillingService:
    """Plans (`build_plans`, with its checks) and Stripe; development without STRIPE_SECRET_KEY has no Stripe (the
    subscribe page offers a labelled development activation)."""
    plans = build_plans(settings, environ=environ)
    key = _stripe_key(settings)
    stripe_api: StripeApi | None = None
    if key:
        from billing.stripe_api import StripeApi  # here: only a process that calls Stripe loads its library

        stripe_api = StripeApi(key, api_base=settings.stripe_api_base)
    if stripe_api is not None and settings.stripe_webhook_secret is None:
        logger.warning("STRIPE_WEBHOOK_SECRET unset: /billing/webhook is off, subscriptions will not activate")
    return BillingService(
        plans=plans, stripe_api=stripe_api, production=settings.is_production, photos_left=photos_left
    )


def build_links(settings: Settings) -> PortalLinks:
    """Portal links: placeholders for the engine, signed with SECRET_KEY when a message leaves."""
    return PortalLinks(
        settings.effective_secret_key,
        settings.effective_public_base_url,
        photo_link_ttl=settings.photo_link_ttl_seconds,
        sign_in_ttl=settings.sign_in_link_ttl_seconds,
    )


def build_channels(settings: Settings, redis: ArqRedis) -> list[Channel]:
    """The channel adapters this deployment sends through: the web always, Telegram when TELEGRAM_BOT_TOKEN is
    set, WhatsApp when WHATSAPP_ENABLED."""
    channels: list[Channel] = [WebChannel(redis)]
    if settings.telegram_bot_token is not None:
        channels.append(
            TelegramChannel(build_bot(_secret(settings.telegram_bot_token), settings.telegram_api_base_url))
        )
    if settings.whatsapp_enabled:
        channels.append(build_whatsapp_channel(settings))
    return channels


def build_whatsapp_channel(settings: Settings) -> WhatsAppChannel:
    """The WhatsApp adapter: a pywa client (`server=None`) on WHATSAPP_API_BASE_URL with its own HTTP client."""
    # Imported here: pywa is loaded only by a process that has WhatsApp configured.
    from channels.whatsapp.channel import WhatsAppChannel
    from channels.whatsapp.client import build_whatsapp, graph_session

    session = graph_session(settings.whatsapp_api_base_url)
    wa = build_whatsapp(
        phone_id=settings.whatsapp_phone_id or "",
        token=_secret(settings.whatsapp_token),
        app_secret=_secret(settings.whatsapp_app_secret),
        verify_token=_secret(settings.whatsapp_verify_token),
        base_url=settings.whatsapp_api_base_url,
        session=session,
    )
    return WhatsAppChannel(wa, session=session)


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


#: WhatsApp error codes of a late "failed" status meaning the 24-hour window was closed: hold, not fail.
WHATSAPP_HOLD_CODES = frozenset({"131047"})


async def whatsapp_status(wamid: str, status: str, error_code: str | None) -> None:
    """A WhatsApp status callback: kept on the outbound row; a closed-window failure holds the reply again."""
    await record_platform_status(WHATSAPP, wamid, status, error_code, hold_codes=WHATSAPP_HOLD_CODES)


def build_services(
    settings: Settings,
    redis: ArqRedis,
    *,
    llm: LLMProvider | None = None,
    entitlements: Entitlements | None = None,
    channels: list[Channel] | None = None,
    moderation: Moderation | None = None,
) -> Services:
    """Wire the conversation core with its adapters. `llm` / `entitlements` / `channels` / `moderation` override
    the configured ones (tests)."""
    links = build_links(settings)
    photos = PhotoService(redis)
    model = llm or build_llm(settings)
    moderation = moderation or build_moderation(settings)
    entitlements = entitlements or build_entitlements(settings)
    limiter = RedisRateLimiter.from_url(settings.redis_url)
    engine = ConversationEngine(
        llm=model,
        photos=photos,
        entitlements=entitlements,
        links=links,
        safety=check_field,
        moderation=moderation,
        config=EngineConfig(
            free_regenerations=settings.setup_free_regenerations,
            terms_url=f"{settings.effective_public_base_url}/terms",
            sign_in_link_minutes=max(1, settings.sign_in_link_ttl_seconds // 60),
            photo_requests_per_hour=settings.photo_requests_per_user_per_hour,
        ),
        rate_limiter=limiter,
    )
    adapters = {channel.name: channel for channel in (channels or build_channels(settings, redis))}
    queue = DrainQueue(redis)
    deliverer = Deliverer(
        adapters,
        DeliveryConfig(max_attempts=settings.delivery_max_attempts, backoff_seconds=settings.delivery_backoff_seconds),
        links=links,
    )
    runner = TurnRunner(
        engine=engine,
        deliverer=deliverer,
        queue=queue,
        photos=photos,
        config=RunnerConfig(
            max_turn_attempts=settings.turn_max_attempts,
            turn_backoff_seconds=settings.turn_backoff_seconds,
            activity_interval=settings.activity_interval_seconds,
        ),
    )
    return Services(
        settings=settings,
        redis=redis,
        links=links,
        inbox=Inbox(queue, limiter=limiter, limit=InboundLimit(per_window=settings.inbound_per_user_per_minute)),
        engine=engine,
        runner=runner,
        queue=queue,
        photos=photos,
        llm=model,
        channels=adapters,
        safety=SafetyChecker(check_field, moderation),
        limiter=limiter,
        entitlements=entitlements,
    )


@asynccontextmanager
async def open_services(settings: Settings, redis: ArqRedis, **overrides: Any) -> AsyncIterator[Services]:
    """`build_services` for the life of a process: the clients the services own are closed on exit."""
    services = build_services(settings, redis, **overrides)
    telegram = services.channels.get(TELEGRAM)
    if isinstance(telegram, TelegramChannel):
        try:
            await telegram.bot.initialize()  # getMe; sending works without it, but its HTTP client stays open
        except TelegramError as exc:
            logger.warning("Telegram bot could not be initialised (sending still works): %s", exc)
    try:
        yield services
    finally:
        if isinstance(telegram, TelegramChannel):
            await telegram.bot.shutdown()
        close = getattr(services.safety.moderation, "aclose", None)
        if close is not None:
            await close()
        # The WhatsApp adapter's own HTTP client (duck-typed: pywa is not loaded where WhatsApp is not configured).
        close_whatsapp = getattr(services.channels.get(WHATSAPP), "aclose", None)
        if close_whatsapp is not None:
            await close_whatsapp()
        # The LLM provider's HTTP client (an aiohttp session), when it was built here: an injected one is its owner's.
        close_llm = getattr(services.llm, "aclose", None) if overrides.get("llm") is None else None
        if close_llm is not None:
            await close_llm()


# -- photos -----------------------------------------------------------------------------------------------------


def build_s3(settings: Settings) -> S3Connection | None:
    """The process's S3 client (not opened yet: the app's cleanup_ctx or the worker opens it), or None when
    S3_BUCKET is unset and photos live under MEDIA_DIR."""
    if not settings.s3_configured:
        return None
    from imaging.s3 import S3Config, S3Connection  # here: botocore is loaded only when S3 is configured

    prefix = settings.s3_prefix.strip("/")
    return S3Connection(
        S3Config(
            bucket=settings.s3_bucket or "",
            access_key_id=_secret(settings.s3_access_key_id),
            secret_access_key=_secret(settings.s3_secret_access_key),
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region,
            prefix=f"{prefix}/" if prefix else "",
        )
    )


def build_store(settings: Settings, s3: S3Connection | None = None) -> PhotoStore:
    """The served copies: under "photos/" in the S3 bucket when `s3` is given, else under MEDIA_DIR/photos."""
    if s3 is not None:
        from imaging.s3 import S3PhotoStore  # loaded already: `s3` is open

        return S3PhotoStore(s3, "photos/")
    _require_no_s3(settings)
    return LocalPhotoStore(settings.media_dir / "photos")


def build_originals(settings: Settings, s3: S3Connection | None = None) -> PhotoStore:
    """The private store of references' unwatermarked originals: apart from the served copies, never served."""
    if s3 is not None:
        from imaging.s3 import S3PhotoStore  # loaded already: `s3` is open

        return S3PhotoStore(s3, "originals/")
    _require_no_s3(settings)
    return LocalPhotoStore(settings.media_dir / "originals")


def _require_no_s3(settings: Settings) -> None:
    # A process that would write to local disk while its peers use the bucket loses photos: a wiring bug.
    if settings.s3_configured:
        raise ConfigError("S3_BUCKET is set: photo stores need the process's S3 connection (build_s3)")


@asynccontextmanager
async def open_s3(settings: Settings, s3: S3Connection | None = None) -> AsyncIterator[S3Connection | None]:
    """The S3 connection for a block: `s3` as given (its owner opens it), or one built and opened here."""
    if s3 is not None or not settings.s3_configured:
        yield s3
        return
    connection = build_s3(settings)
    assert connection is not None
    async with connection:
        yield connection


def build_eraser(
    settings: Settings, *, s3: S3Connection | None = None, cancel_subscription: CancelSubscription | None = None
) -> Eraser:
    """Account erasure over this deployment's photo stores; `cancel_subscription` cancels Stripe at once."""
    return Eraser(
        store=build_store(settings, s3),
        originals=build_originals(settings, s3),
        cancel_subscription=cancel_subscription,
    )


def build_provider(settings: Settings) -> ImageProvider:
    """The configured image provider (placeholder only in development)."""
    token = settings.replicate_api_token.get_secret_value() if settings.replicate_api_token else None
    return create_image_provider(
        ProviderConfig(
            kind=settings.image_provider,
            environment=settings.ava_env,
            replicate_api_token=token,
            replicate_base_url=settings.replicate_base_url,
            replicate_reference_model=settings.replicate_reference_model,
            replicate_edit_model=settings.replicate_edit_model,
        )
    )


def build_signer(settings: Settings) -> ProvenanceSigner:
    """The C2PA signer from C2PA_CERT_CHAIN / C2PA_PRIVATE_KEY; development creates local dev certificates."""
    if settings.c2pa_cert_chain and settings.c2pa_private_key:
        return ProvenanceSigner.from_files(settings.c2pa_cert_chain, settings.c2pa_private_key)
    if settings.is_production:
        raise ConfigError("C2PA_CERT_CHAIN and C2PA_PRIVATE_KEY are required in production")
    chain, key = DEV_CERTS_DIR / "chain.pem", DEV_CERTS_DIR / "signer.key"
    if not (chain.exists() and key.exists()):
        create_dev_certificates(DEV_CERTS_DIR, force=True)
        logger.warning("development fallback: created C2PA development certificates in %s", DEV_CERTS_DIR)
    return ProvenanceSigner.from_files(chain, key)


def build_moderation(settings: Settings) -> Moderation | None:
    """The model-based moderation layer MODERATION_KIND names, or None (the rules alone).

    None only when MODERATION_DISABLED=true, or in development without MODERATION_BASE_URL/MODERATION_API_KEY
    (`Settings.check` refuses that in production; this refuses it again in case `check` was skipped).
    """
    if settings.moderation_disabled:
        return None
    base_url, key = settings.moderation_base_url, settings.moderation_api_key
    if not settings.moderation_configured or base_url is None or key is None:
        if settings.is_production:
            raise ConfigError("MODERATION_BASE_URL and MODERATION_API_KEY are required in production")
        return None
    api_key = key.get_secret_value()
    if settings.moderation_kind == "llama-guard":
        return LlamaGuardModeration(
            base_url=base_url,
            api_key=api_key,
            model=settings.moderation_model or DEFAULT_LLAMA_GUARD_MODEL,
            timeout=settings.moderation_timeout_seconds,
        )
    return OpenAIModeration(
        base_url=base_url,
        api_key=api_key,
        model=settings.moderation_model or DEFAULT_OPENAI_MODEL,
        threshold=settings.moderation_threshold,
        timeout=settings.moderation_timeout_seconds,
    )


@asynccontextmanager
async def open_photo_pipeline(
    settings: Settings, services: Services, *, provider: ImageProvider | None = None, s3: S3Connection | None = None
) -> AsyncIterator[PhotoPipeline]:
    """The photo pipeline of a worker process, with its HTTP client (and S3 client, unless `s3` is the caller's
    open one) closed on exit.

    Photos are charged to their user's photo quota when their job starts, and refunded when they end blocked or
    failed (the pipeline calls these hooks; imaging does not know billing)."""
    chosen = provider or build_provider(settings)
    entitlements = services.entitlements

    async def charge_photo(photo: Photo) -> QuotaVerdict:
        return await entitlements.charge(photo.user_id, "photo", photo_key(photo.id))

    async def refund_photo(photo: Photo) -> bool:
        return await entitlements.refund(photo_key(photo.id))

    async def announce(ref: ChatRef, kind: ActivityKind) -> None:  # e.g. "still trying…" after a failed attempt
        channel = services.channels.get(ref.channel)
        if channel is not None:
            await channel.show_activity(ref, kind)

    async with httpx.AsyncClient(follow_redirects=False) as http, open_s3(settings, s3) as storage:
        yield PhotoPipeline(
            provider=chosen,
            store=build_store(settings, storage),
            signer=build_signer(settings),
            http=http,
            watermark_text=settings.watermark_text,
            on_finished=services.runner.record_photo_event,
            after_finished=services.runner.drain_here,  # the notice is sent by this job when it can
            activity=services.runner.photo_activity,
            max_attempts=settings.photo_max_attempts,
            backoff_seconds=settings.photo_backoff_seconds,
            safety=services.safety,
            originals=build_originals(settings, storage),
            charge=charge_photo,
            refund=refund_photo,
            announce=announce,
            reference_by_url=settings.references_by_url,
        )
        close = getattr(chosen, "aclose", None)
        if close is not None:
            await close()
