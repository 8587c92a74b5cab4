"""Builders for the photo pipeline: provider, storage, C2PA signer, and the notify hook into the core."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from ava_bot.settings import Settings
from ava_bot.wiring import Services
from core.engine import PhotoEvent
from core.errors import ConfigError
from imaging.certs import create_dev_certificates
from imaging.pipeline import PhotoOutcome, PhotoPipeline
from imaging.provenance import ProvenanceSigner
from imaging.providers.base import ImageProvider
from imaging.providers.factory import ProviderConfig, create_image_provider
from imaging.storage import LocalPhotoStore

logger = logging.getLogger(__name__)

DEV_CERTS_DIR = Path("data/certs")


def build_store(settings: Settings) -> LocalPhotoStore:
    """Photo storage under MEDIA_DIR (a volume shared by web and worker in compose)."""
    return LocalPhotoStore(settings.media_dir / "photos")


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


def notify_hook(services: Services) -> Callable[[PhotoOutcome], Awaitable[None]]:
    """The pipeline's `notify`: hand the outcome to the turn runner, which tells the user exactly once."""

    async def notify(outcome: PhotoOutcome) -> None:
        event = PhotoEvent(outcome.photo_id, outcome.kind, outcome.status, outcome.avatar_id)
        await services.runner.photo_event(outcome.user_id, event)

    return notify


@asynccontextmanager
async def open_photo_pipeline(
    settings: Settings, services: Services, *, provider: ImageProvider | None = None
) -> AsyncIterator[PhotoPipeline]:
    """The photo pipeline of a worker process, with its HTTP client closed on exit."""
    chosen = provider or build_provider(settings)
    async with httpx.AsyncClient(follow_redirects=False) as http:
        yield PhotoPipeline(
            provider=chosen,
            store=build_store(settings),
            signer=build_signer(settings),
            http=http,
            watermark_text=settings.watermark_text,
            notify=notify_hook(services),
            max_attempts=settings.photo_max_attempts,
            backoff_seconds=settings.photo_backoff_seconds,
        )
        close = getattr(chosen, "aclose", None)
        if close is not None:
            await close()
