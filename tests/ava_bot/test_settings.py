"""Settings: production refuses missing secrets in one message; development falls back and says so."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from ava_bot.errors import MissingSettingsError
from ava_bot.settings import DEV_DATABASE_URL, Settings
from core.errors import ConfigError

SettingsFactory = Callable[..., Settings]

PRODUCTION_BASE: dict[str, Any] = {
    "ava_env": "production",
    "public_base_url": "https://ava.example.org",
    "secret_key": "kQ3v9ZrT1mXb8LwP2nYd7HsJ4cFa6GtE0uRiKoVyBzNe",  # random-looking: "x" * 48 is refused
    "database_url": "postgres://ava@db/ava",
    "redis_url": "redis://redis:6379/0",
    "llm_api_key": "sk-test",
    "replicate_api_token": "r8_test",
    "stripe_secret_key": "sk_test_1",
    "stripe_webhook_secret": "whsec_1",
    "stripe_price_id": "price_1",
    "c2pa_cert_chain": "/certs/chain.pem",
    "c2pa_private_key": "/certs/signer.key",
    "moderation_base_url": "https://api.openai.com/v1",
    "moderation_api_key": "sk-moderation",
}


def test_production_lists_every_missing_secret_in_one_error(make_settings: SettingsFactory) -> None:
    """A production start without secrets fails once, naming every missing key."""
    settings = make_settings(ava_env="production", c2pa_cert_chain=None, c2pa_private_key=None)
    with pytest.raises(MissingSettingsError) as info:
        settings.check()
    message = str(info.value)
    for key in (
        "SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "PUBLIC_BASE_URL",
        "LLM_API_KEY",
        "REPLICATE_API_TOKEN",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "C2PA_CERT_CHAIN",
        "C2PA_PRIVATE_KEY",
        "MODERATION_BASE_URL",
        "MODERATION_API_KEY",
    ):
        assert key in message
    assert message.count("missing required settings") == 1


def test_production_with_everything_set_passes(make_settings: SettingsFactory) -> None:
    """A complete production configuration is accepted."""
    make_settings(**PRODUCTION_BASE).check()


def test_production_empty_string_counts_as_missing(make_settings: SettingsFactory) -> None:
    """An empty or blank value is as missing as an absent one."""
    settings = make_settings(**(PRODUCTION_BASE | {"llm_api_key": "  "}))
    with pytest.raises(MissingSettingsError) as info:
        settings.check()
    assert info.value.missing == ["LLM_API_KEY"]


def test_production_requires_channel_secrets_only_when_enabled(make_settings: SettingsFactory) -> None:
    """Telegram needs its webhook secret once a token is set, WhatsApp its keys once enabled."""
    settings = make_settings(**(PRODUCTION_BASE | {"telegram_bot_token": "123:abc", "whatsapp_enabled": True}))
    with pytest.raises(MissingSettingsError) as info:
        settings.check()
    assert info.value.missing == [
        "TELEGRAM_WEBHOOK_SECRET",
        "WHATSAPP_PHONE_ID",
        "WHATSAPP_TOKEN",
        "WHATSAPP_APP_SECRET",
        "WHATSAPP_VERIFY_TOKEN",
    ]


def test_short_secret_key_is_rejected(make_settings: SettingsFactory) -> None:
    """A guessable SECRET_KEY is refused in every environment."""
    with pytest.raises(ConfigError, match="at least 32"):
        make_settings(secret_key="short").check()


def test_settings_read_environment_names(make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fields map to the documented upper-case environment variables."""
    make_settings()  # clears the developer's environment for this test
    monkeypatch.setenv("AVA_ENV", "production")
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("SENTRY_DSN", "")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.is_production
    assert settings.telegram_api_base_url == "http://127.0.0.1:9/"


def test_development_falls_back_and_logs_each_once(
    make_settings: SettingsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Development runs on embedded defaults and logs one line per fallback."""
    settings = make_settings()
    settings.check()
    assert settings.effective_database_url == DEV_DATABASE_URL
    assert len(settings.effective_secret_key) >= 32
    with caplog.at_level(logging.WARNING):
        settings.log_fallbacks()
    lines = [r.getMessage() for r in caplog.records]
    assert any("SECRET_KEY" in line for line in lines)
    assert any("DATABASE_URL" in line for line in lines)
    assert len(lines) == len(set(lines)) == len(settings.development_fallbacks())


def test_secrets_are_not_in_repr(make_settings: SettingsFactory) -> None:
    """Secret values never appear when settings are printed or logged."""
    settings = make_settings(**PRODUCTION_BASE)
    assert "sk-test" not in repr(settings)
    assert PRODUCTION_BASE["secret_key"] not in str(settings.model_dump())


def test_empty_environment_values_count_as_unset(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`KEY=` in the environment is unset: production reports it missing instead of using an empty path."""
    make_settings()
    monkeypatch.setenv("AVA_ENV", "production")
    monkeypatch.setenv("C2PA_CERT_CHAIN", "")
    monkeypatch.setenv("PORT", "")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.port == 8080
    assert "C2PA_CERT_CHAIN" in settings.missing_production_settings()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, False),  # photos on local disk: nothing to fetch by URL
        ({"s3_reachable_by_provider": True}, False),  # ... even when told the (absent) bucket is reachable
        ({"s3_bucket": "b", "s3_access_key_id": "k", "s3_secret_access_key": "s"}, True),  # AWS S3
        (
            {"s3_bucket": "b", "s3_access_key_id": "k", "s3_secret_access_key": "s", "s3_reachable_by_provider": False},
            False,
        ),
        (
            {
                "s3_bucket": "b",
                "s3_access_key_id": "k",
                "s3_secret_access_key": "s",
                "s3_endpoint_url": "http://minio:9000",
            },
            False,
        ),
        (
            {
                "s3_bucket": "b",
                "s3_access_key_id": "k",
                "s3_secret_access_key": "s",
                "s3_endpoint_url": "https://r2.example.com",
                "s3_reachable_by_provider": "true",
            },
            True,
        ),
    ],
)
def test_references_go_by_url_only_where_the_provider_can_reach_the_bucket(
    make_settings: SettingsFactory, values: dict[str, Any], expected: bool
) -> None:
    """Presigned reference URLs by default on AWS S3 only (a custom endpoint may be a private MinIO Replicate
    cannot reach); S3_REACHABLE_BY_PROVIDER says otherwise either way; never without S3."""
    assert make_settings(**values).references_by_url is expected
