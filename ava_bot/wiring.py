"""Builders shared by the web app and the worker: every concrete implementation is chosen here, once.

Development without API keys gets clearly named offline implementations (demo LLM, placeholder images,
allow-all entitlements); production refuses to build those.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from arq.connections import ArqRedis

from ava_bot.outbox import ChannelOutbox
from ava_bot.queueing import ArqTurnQueue, RedisUserLock
from ava_bot.settings import Settings
from billing.entitlements import DevelopmentEntitlements
from channels.web import WebChannel
from core.engine import ConversationEngine, EngineConfig
from core.errors import ConfigError
from core.inbox import Inbox
from core.llm import OfflineDemoLLM, OpenAICompatibleLLM
from core.ports import Entitlements, LLMProvider
from core.turns import TurnRunner
from imaging.safety import check_prompt
from imaging.service import PhotoService
from portal.links import PortalLinks

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Services:
    """The application services of one process."""

    settings: Settings
    redis: ArqRedis
    links: PortalLinks
    inbox: Inbox
    engine: ConversationEngine
    runner: TurnRunner
    photos: PhotoService
    llm: LLMProvider


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
    """The entitlement gate. Only the development gate exists until Stripe billing lands."""
    if settings.is_production:
        raise ConfigError("billing (the Stripe entitlement gate) is not implemented yet: production cannot start")
    return DevelopmentEntitlements()


def build_links(settings: Settings) -> PortalLinks:
    """Signed portal links."""
    return PortalLinks(settings.effective_secret_key, settings.effective_public_base_url)


def build_services(
    settings: Settings,
    redis: ArqRedis,
    *,
    llm: LLMProvider | None = None,
    entitlements: Entitlements | None = None,
) -> Services:
    """Wire the conversation core with its adapters. `llm`/`entitlements` override the configured ones."""
    links = build_links(settings)
    photos = PhotoService(redis)
    model = llm or build_llm(settings)
    engine = ConversationEngine(
        llm=model,
        photos=photos,
        entitlements=entitlements or build_entitlements(settings),
        links=links,
        safety=check_prompt,
        config=EngineConfig(
            free_regenerations=settings.setup_free_regenerations,
            terms_url=f"{settings.effective_public_base_url}/terms",
        ),
    )
    outbox = ChannelOutbox([WebChannel(redis)])
    runner = TurnRunner(engine=engine, outbox=outbox, lock=RedisUserLock(redis), photos=photos)
    return Services(
        settings=settings,
        redis=redis,
        links=links,
        inbox=Inbox(ArqTurnQueue(redis)),
        engine=engine,
        runner=runner,
        photos=photos,
        llm=model,
    )
