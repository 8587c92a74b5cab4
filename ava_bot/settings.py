"""Settings: one pydantic-settings object built once in `main()` from the environment and `.env`.

Every external base URL is a setting so tests and self-hosters can redirect them. In production a
missing secret stops start-up with ONE message naming every missing key; in development each
fallback to an embedded default is reported (and logged once by `log_fallbacks`).

The model-based moderation layer (MODERATION_*) is required in production like a secret; only an explicit
MODERATION_DISABLED=true lets production run on the rules alone, and that is logged at WARNING on every start.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ava_bot.errors import MissingSettingsError
from ava_bot.runtime import EventLoopKind
from ava_bot.secret_key import load_or_create_secret, secret_key_problem
from core.errors import ConfigError

logger = logging.getLogger(__name__)

DEV_DATABASE_URL = "sqlite://./data/ava.sqlite3"


class Settings(BaseSettings):
    """All configuration of Ava. Field names map to upper-case environment variables."""

    # Empty values (`KEY=` in .env) mean "unset", so they count as missing in production.
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True)

    ava_env: Literal["development", "production"] = "development"
    public_base_url: str | None = None
    secret_key: SecretStr | None = None
    #: Development only: where the generated SECRET_KEY is kept when none is set (created once, mode 0600).
    secret_key_file: Path = Path("data/secret_key")
    #: Interface to listen on; unset: all interfaces in production (containers), loopback in development.
    host: str | None = None
    port: int = 8080
    #: Direct peers whose X-Forwarded-For is believed (comma-separated addresses or networks): the TLS proxy.
    trusted_proxies: str = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
    log_level: str = "INFO"

    database_url: str | None = None
    redis_url: str | None = None

    llm_base_url: str = "https://api.openai.com/v1"
    llm_api_key: SecretStr | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout_seconds: float = 30.0

    image_provider: Literal["replicate", "placeholder"] | None = None
    replicate_api_token: SecretStr | None = None
    replicate_base_url: str = "https://api.replicate.com"
    replicate_reference_model: str = "black-forest-labs/flux-1.1-pro"
    replicate_edit_model: str = "black-forest-labs/flux-kontext-pro"

    telegram_bot_token: SecretStr | None = None
    telegram_webhook_secret: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org"
    #: The bot's username (without "@"), for the account page's "Connect Telegram" link.
    telegram_bot_username: str | None = None

    whatsapp_enabled: bool = False
    whatsapp_phone_id: str | None = None
    whatsapp_token: SecretStr | None = None
    whatsapp_app_secret: SecretStr | None = None
    whatsapp_verify_token: SecretStr | None = None
    whatsapp_api_base_url: str = "https://graph.facebook.com"
    #: The WhatsApp number users write to, international format without "+", for "Connect WhatsApp".
    whatsapp_number: str | None = None

    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_base: str = "https://api.stripe.com"
    #: The Stripe price id of the default plan (the plans file names the variable of each plan's price id).
    stripe_price_id: str | None = None
    plans_file: Path = Path("plans.toml")

    #: Lifetime of a photo link sent in chat, and of a magic sign-in link.
    photo_link_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    sign_in_link_ttl_seconds: int = Field(default=15 * 60, ge=60)
    #: A portal session ends this long after sign-in (or earlier: sign out, sign out everywhere, erasure).
    session_max_age_seconds: int = Field(default=30 * 24 * 3600, ge=300)

    #: Rate limits (moving windows in Redis, shared by every replica; the inbound one is counted in PostgreSQL).
    signin_per_ip_per_15min: int = Field(default=30, ge=1)
    signin_per_account_per_15min: int = Field(default=10, ge=1)
    signup_per_ip_per_hour: int = Field(default=10, ge=1)
    inbound_per_user_per_minute: int = Field(default=20, ge=1)
    photo_requests_per_user_per_hour: int = Field(default=30, ge=1)
    chat_streams_per_user: int = Field(default=5, ge=1)
    #: Password hashes computed at once per web process (each argon2 hash takes ~64 MB and ~0.1 s of a core).
    password_hash_concurrency: int = Field(default=2, ge=1)

    sentry_dsn: SecretStr | None = None
    media_dir: Path = Path("data/media")
    #: S3-compatible object storage for photos, shared by every web and worker replica. S3_BUCKET unset: MEDIA_DIR.
    #: S3_BUCKET, S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together; S3_ENDPOINT_URL unset means AWS S3.
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = None
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    #: Prepended to every object key (e.g. "ava/" when the bucket is shared); photos go under "<prefix>photos/".
    s3_prefix: str = ""
    #: Whether the image provider (Replicate, on the internet) can reach the S3 endpoint: then it fetches each
    #: photo's reference itself by a presigned URL valid 10 minutes, instead of the worker reading the reference
    #: and sending it as a data URI. Unset: yes on AWS S3 (no S3_ENDPOINT_URL), no for a custom endpoint.
    s3_reachable_by_provider: bool | None = None
    c2pa_cert_chain: Path | None = None
    c2pa_private_key: Path | None = None
    watermark_text: str = "AI-generated"

    moderation_kind: Literal["openai", "llama-guard"] = "openai"
    moderation_base_url: str | None = None
    moderation_api_key: SecretStr | None = None
    moderation_model: str | None = None
    moderation_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    moderation_timeout_seconds: float = Field(default=10.0, gt=0)
    moderation_disabled: bool = False

    setup_free_regenerations: int = Field(default=3, ge=0)
    photo_max_attempts: int = Field(default=3, ge=1)
    photo_backoff_seconds: float = Field(default=2.0, gt=0)
    turn_max_attempts: int = Field(default=3, ge=1)
    turn_backoff_seconds: float = Field(default=2.0, gt=0)
    delivery_max_attempts: int = Field(default=8, ge=1)
    delivery_backoff_seconds: float = Field(default=2.0, gt=0)
    activity_interval_seconds: float = Field(default=4.0, gt=0)
    #: Jobs one worker process runs at once (chat turns, photos, sweeps). A turn mostly waits on the LLM and holds
    #: no database connection meanwhile, so a worker's turns/s is at most this / the LLM's latency; photos beyond
    #: the CPU count wait for post-processing, each holding its image (~1 MB) meanwhile.
    worker_max_jobs: int = Field(default=50, ge=1, le=1000)
    #: arq job time limits; a job of a worker that died is run again by another worker this + 10 s later.
    job_timeout_seconds: int = Field(default=120, ge=1)
    photo_job_timeout_seconds: int = Field(default=300, ge=1)
    #: Sweepers (re-schedule work Redis lost or a dead worker left): how often they run (a divisor of 60) and
    #: how old left-behind turns and photos must be before they are scheduled again.
    sweep_every_seconds: int = Field(default=30, ge=1, le=60)
    turn_stuck_after_seconds: float = Field(default=30.0, gt=0)
    photo_stuck_after_seconds: float = Field(default=120.0, gt=0)
    #: On SIGTERM, in-flight requests (web) and jobs (worker) get this long to finish; compose's
    #: stop_grace_period is longer. Jobs still running then are cancelled and run again by another worker.
    shutdown_grace_seconds: int = Field(default=20, ge=0)
    #: The event loop of `serve`, `worker` and `dev`: uvloop (libuv; less CPU per socket operation, so more
    #: webhooks and turns per core) or Python's own asyncio loop, the fallback if a library ever misbehaves on
    #: uvloop.
    event_loop: EventLoopKind = "uvloop"

    @field_validator("sweep_every_seconds")
    @classmethod
    def _divides_minute(cls, value: int) -> int:
        if 60 % value:
            raise ValueError("must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60)")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            ipaddress.ip_network(part, strict=False)  # ValueError: pydantic reports the bad entry
        return value

    @property
    def is_production(self) -> bool:
        """True when running with production rules (no embedded fallbacks)."""
        return self.ava_env == "production"

    @property
    def effective_host(self) -> str:
        """Where the web process listens: HOST, else all interfaces in production and loopback in development."""
        if self.host:
            return self.host
        return "0.0.0.0" if self.is_production else "127.0.0.1"  # noqa: S104 - production runs in a container

    @property
    def trusted_proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """TRUSTED_PROXIES as networks."""
        return [ipaddress.ip_network(p.strip(), strict=False) for p in self.trusted_proxies.split(",") if p.strip()]

    @property
    def moderation_configured(self) -> bool:
        """True when a moderation layer is set up (base URL and key) and not explicitly disabled."""
        return not (
            self.moderation_disabled or _is_unset(self.moderation_base_url) or _is_unset(self.moderation_api_key)
        )

    @property
    def s3_configured(self) -> bool:
        """True when photos live in S3-compatible object storage (S3_BUCKET set) rather than under MEDIA_DIR."""
        return not _is_unset(self.s3_bucket)

    @property
    def references_by_url(self) -> bool:
        """True when the image provider fetches references from S3 by presigned URLs (S3_REACHABLE_BY_PROVIDER)."""
        if not self.s3_configured:
            return False
        if self.s3_reachable_by_provider is not None:
            return self.s3_reachable_by_provider
        return _is_unset(self.s3_endpoint_url)

    def missing_s3_settings(self) -> list[str]:
        """The S3 settings still unset when some are set (an empty list: S3 fully configured, or not at all)."""
        parts: dict[str, object] = {
            "S3_BUCKET": self.s3_bucket,
            "S3_ACCESS_KEY_ID": self.s3_access_key_id,
            "S3_SECRET_ACCESS_KEY": self.s3_secret_access_key,
        }
        unset = [name for name, value in parts.items() if _is_unset(value)]
        if len(unset) == len(parts) and _is_unset(self.s3_endpoint_url):
            return []
        return unset

    def missing_production_settings(self) -> list[str]:
        """Environment names of required settings that are unset (production rules)."""
        required: dict[str, object] = {
            "PUBLIC_BASE_URL": self.public_base_url,
            "SECRET_KEY": self.secret_key,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "LLM_API_KEY": self.llm_api_key,
            "REPLICATE_API_TOKEN": self.replicate_api_token,
            "STRIPE_SECRET_KEY": self.stripe_secret_key,
            "STRIPE_WEBHOOK_SECRET": self.stripe_webhook_secret,
            "STRIPE_PRICE_ID": self.stripe_price_id,
            "C2PA_CERT_CHAIN": self.c2pa_cert_chain,
            "C2PA_PRIVATE_KEY": self.c2pa_private_key,
        }
        if not self.moderation_disabled:  # only an explicit MODERATION_DISABLED=true waives the second layer
            required["MODERATION_BASE_URL"] = self.moderation_base_url
            required["MODERATION_API_KEY"] = self.moderation_api_key
        if self.telegram_bot_token is not None:
            required["TELEGRAM_WEBHOOK_SECRET"] = self.telegram_webhook_secret
        if self.whatsapp_enabled:
            required |= {
                "WHATSAPP_PHONE_ID": self.whatsapp_phone_id,
                "WHATSAPP_TOKEN": self.whatsapp_token,
                "WHATSAPP_APP_SECRET": self.whatsapp_app_secret,
                "WHATSAPP_VERIFY_TOKEN": self.whatsapp_verify_token,
            }
        return [name for name, value in required.items() if _is_unset(value)] + self.missing_s3_settings()

    def check(self) -> None:
        """Raise `MissingSettingsError` naming every missing key when production rules apply."""
        if self.is_production:
            missing = self.missing_production_settings()
            if missing:
                raise MissingSettingsError(missing)
        if self.secret_key is not None:
            problem = secret_key_problem(self.secret_key.get_secret_value())
            # Development accepts any long enough key (a developer's own); production a random-looking one only.
            if problem and (self.is_production or len(self.secret_key.get_secret_value()) < 32):
                raise ConfigError(problem)
        if missing_s3 := self.missing_s3_settings():
            raise ConfigError(
                f"S3 photo storage is half-configured: {', '.join(missing_s3)} unset. Set S3_BUCKET, "
                "S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY together (and S3_ENDPOINT_URL unless on AWS), "
                "or none of them to store photos under MEDIA_DIR."
            )
        if not self.moderation_disabled and _is_unset(self.moderation_base_url) != _is_unset(self.moderation_api_key):
            raise ConfigError(
                "MODERATION_BASE_URL and MODERATION_API_KEY must be set together "
                "(or set MODERATION_DISABLED=true to check image prompts with the rules alone)."
            )

    def development_fallbacks(self) -> list[str]:
        """One human line per embedded default development is using instead of a real setting."""
        if self.is_production:
            return []
        notes = []
        if self.secret_key is None:
            notes.append(f"SECRET_KEY unset: using the generated development key kept in {self.secret_key_file}")
        if self.database_url is None:
            notes.append(f"DATABASE_URL unset: using SQLite at {DEV_DATABASE_URL}")
        if self.redis_url is None:
            notes.append("REDIS_URL unset: using in-process fakeredis (single-process `ava-bot dev` only)")
        if self.public_base_url is None:
            notes.append(f"PUBLIC_BASE_URL unset: using {self.effective_public_base_url}")
        if self.llm_api_key is None:
            notes.append("LLM_API_KEY unset: using the offline demo LLM")
        if self.replicate_api_token is None:
            notes.append("REPLICATE_API_TOKEN unset: using the offline placeholder image provider")
        if self.stripe_secret_key is None:
            notes.append(
                "STRIPE_SECRET_KEY unset: no payments; the subscribe page offers a labelled development "
                "activation without payment"
            )
        if not self.moderation_disabled and not self.moderation_configured:
            notes.append(
                "MODERATION_BASE_URL/MODERATION_API_KEY unset: no moderation layer, the rules alone check prompts"
            )
        return notes

    def start_warnings(self) -> list[str]:
        """Deliberate weakenings of safety that hold in every environment (logged at WARNING on each start)."""
        if self.moderation_disabled:
            return ["MODERATION_DISABLED=true: the moderation layer is OFF, the rules alone check image prompts"]
        return []

    def log_fallbacks(self) -> None:
        """Log each development fallback and start warning once (called once by the CLI after building Settings)."""
        for note in self.development_fallbacks():
            logger.warning("development fallback: %s", note)
        for warning in self.start_warnings():
            logger.warning("%s", warning)

    @property
    def effective_secret_key(self) -> str:
        """The secret key, or in development the generated one in SECRET_KEY_FILE (created on first use)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        if self.is_production:
            raise MissingSettingsError(["SECRET_KEY"])
        return load_or_create_secret(self.secret_key_file)

    @property
    def effective_database_url(self) -> str:
        """The database URL, or the development SQLite file."""
        if self.database_url:
            return self.database_url
        if self.is_production:
            raise MissingSettingsError(["DATABASE_URL"])
        return DEV_DATABASE_URL

    @property
    def effective_public_base_url(self) -> str:
        """Base URL used in links sent to users (no trailing slash)."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"http://127.0.0.1:{self.port}"


def _is_unset(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, SecretStr):
        return not value.get_secret_value().strip()
    if isinstance(value, str):
        return not value.strip()
    return False


def load_settings() -> Settings:
    """Build and check the settings from the environment and `.env` (call once, in `main()`). A value that is not
    valid is a `ConfigError` naming each variable and what it should be (never the value: it may be a secret)."""
    try:
        settings = Settings()
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {invalid_values(exc)}") from None
    settings.check()
    return settings


def invalid_values(error: ValidationError) -> str:
    """`NAME: what it should be` for each setting `error` refused, by its environment variable's name."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors())
