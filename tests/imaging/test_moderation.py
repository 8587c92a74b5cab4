"""Moderation layers: the real openai client against fake moderation servers; fail closed on every doubt."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ava_bot.errors import MissingSettingsError
from ava_bot.settings import Settings
from ava_bot.wiring import build_moderation
from core.errors import ConfigError, ModerationUnavailable
from core.ports import Moderation, ModerationVerdict
from imaging.moderation import (
    DEFAULT_LLAMA_GUARD_MODEL,
    DEFAULT_OPENAI_MODEL,
    LlamaGuardModeration,
    OpenAIModeration,
    parse_llama_guard,
)
from tests.ava_bot.test_settings import PRODUCTION_BASE
from tests.fakes.moderation import FakeLlamaGuard, FakeModerations, moderation_result
from tests.fakes.server import FakeServer

KEY = "sk-moderation-test"
TEXT = "a candid photo of her on the beach at sunset"

SettingsFactory = Callable[..., Settings]


@pytest.fixture
async def moderations() -> AsyncIterator[FakeModerations]:
    """A running fake `POST /v1/moderations`."""
    async with FakeModerations() as server:
        assert isinstance(server, FakeModerations)
        yield server


@pytest.fixture
async def guard() -> AsyncIterator[FakeLlamaGuard]:
    """A running fake Llama Guard on chat completions."""
    async with FakeLlamaGuard() as server:
        assert isinstance(server, FakeLlamaGuard)
        yield server


def _openai(base_url: str, *, threshold: float = 0.5, timeout: float = 5.0) -> OpenAIModeration:
    return OpenAIModeration(
        base_url=base_url,
        api_key=KEY,
        model="omni-moderation-test",
        threshold=threshold,
        timeout=timeout,
        max_retries=0,
    )


def _guard(base_url: str, *, timeout: float = 5.0) -> LlamaGuardModeration:
    return LlamaGuardModeration(base_url=base_url, api_key=KEY, model="llama-guard3:8b", timeout=timeout, max_retries=0)


async def _closed_port_url() -> str:
    """Base URL of a port nothing listens on any more."""
    server = FakeServer()
    await server.start()
    await server.stop()
    return f"{server.url}/v1"


# -- OpenAI moderation ------------------------------------------------------------------------------------------


async def test_openai_allows_adult_content(moderations: FakeModerations) -> None:
    """A high `sexual` score alone is allowed: only `sexual/minors` refuses."""
    moderations.allow()
    verdict = await _openai(moderations.base_url).check(TEXT)
    assert verdict == ModerationVerdict(allowed=True, reason=None, layer="openai-moderation")


async def test_openai_refuses_sexual_minors(moderations: FakeModerations) -> None:
    """A flagged `sexual/minors` category refuses, naming the category and the layer."""
    moderations.refuse()
    verdict = await _openai(moderations.base_url).check(TEXT)
    assert verdict == ModerationVerdict(allowed=False, reason="sexual/minors", layer="openai-moderation")


async def test_openai_refuses_flag_even_with_low_score(moderations: FakeModerations) -> None:
    """The service's own `sexual/minors` flag refuses whatever the score."""
    moderations.answer({"sexual/minors": 0.01}, flagged={"sexual/minors": True})
    assert not (await _openai(moderations.base_url).check(TEXT)).allowed


@pytest.mark.parametrize(("score", "threshold", "allowed"), [(0.29, 0.3, True), (0.3, 0.3, False), (0.45, 0.3, False)])
async def test_openai_threshold(moderations: FakeModerations, score: float, threshold: float, allowed: bool) -> None:
    """An unflagged `sexual/minors` score at or over the threshold refuses; below it allows."""
    moderations.answer({"sexual/minors": score}, flagged={"sexual/minors": False})
    verdict = await _openai(moderations.base_url, threshold=threshold).check(TEXT)
    assert verdict.allowed is allowed


async def test_openai_other_categories_do_not_refuse(moderations: FakeModerations) -> None:
    """Violence or harassment flags are the rules' business, not this layer's."""
    moderations.answer({"violence": 0.99, "harassment": 0.8})
    assert (await _openai(moderations.base_url).check(TEXT)).allowed


async def test_openai_request_carries_model_text_and_key(moderations: FakeModerations) -> None:
    """The request names the configured model and sends the text as `input`, with the bearer key."""
    await _openai(moderations.base_url).check(TEXT)
    assert moderations.checks() == [{"model": "omni-moderation-test", "input": TEXT}]
    assert moderations.requests[0].headers["Authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("status", [500, 502, 503, 429, 401, 400, 404])
async def test_openai_error_status_fails_closed(moderations: FakeModerations, status: int) -> None:
    """Any HTTP error status raises `ModerationUnavailable`, never an allow."""
    moderations.fail(status)
    with pytest.raises(ModerationUnavailable):
        await _openai(moderations.base_url).check(TEXT)


async def test_openai_timeout_fails_closed(moderations: FakeModerations) -> None:
    """A slow service past the timeout raises `ModerationUnavailable`."""
    moderations.allow(delay=1.0)
    with pytest.raises(ModerationUnavailable, match="timed out"):
        await _openai(moderations.base_url, timeout=0.2).check(TEXT)


async def test_openai_connection_refused_fails_closed() -> None:
    """An unreachable service raises `ModerationUnavailable`."""
    with pytest.raises(ModerationUnavailable, match="unreachable"):
        await _openai(await _closed_port_url()).check(TEXT)


@pytest.mark.parametrize(
    "body",
    [
        {"id": "modr-1", "model": "m", "results": []},
        {"id": "modr-1", "model": "m"},
        {"id": "modr-1", "model": "m", "results": ["flagged"]},
        {"id": "modr-1", "model": "m", "results": [{"flagged": False}]},
        {"results": [moderation_result() | {"categories": {"sexual": False}}]},
        {"results": [moderation_result() | {"category_scores": {"sexual/minors": "low"}}]},
        {"results": [moderation_result() | {"category_scores": {"sexual/minors": None}}]},
        {"results": [moderation_result() | {"categories": {"sexual/minors": "no"}}]},
        {"results": [moderation_result() | {"category_scores": {"sexual/minors": False}}]},
        ["not", "an", "object"],
    ],
)
async def test_openai_malformed_answer_fails_closed(moderations: FakeModerations, body: Any) -> None:
    """An answer without a readable `sexual/minors` verdict raises `ModerationUnavailable`."""
    moderations.malformed(json=body)
    with pytest.raises(ModerationUnavailable):
        await _openai(moderations.base_url).check(TEXT)


@pytest.mark.parametrize(
    ("body", "content_type"), [(b"<html>gateway</html>", "text/html"), (b"{not json", "application/json"), (b"", "")]
)
async def test_openai_non_json_answer_fails_closed(
    moderations: FakeModerations, body: bytes, content_type: str
) -> None:
    """A 200 that is not JSON (a proxy's page, a truncated body) raises `ModerationUnavailable`."""
    moderations.malformed(body=body, content_type=content_type or "application/octet-stream")
    with pytest.raises(ModerationUnavailable):
        await _openai(moderations.base_url).check(TEXT)


def test_openai_threshold_outside_range_is_refused() -> None:
    """A threshold outside 0..1 is a programming error."""
    with pytest.raises(ValueError, match="threshold"):
        OpenAIModeration(base_url="http://127.0.0.1:9/v1", api_key=KEY, threshold=1.5)


# -- Llama Guard ------------------------------------------------------------------------------------------------


async def test_llama_guard_allows_safe(guard: FakeLlamaGuard) -> None:
    """ "safe" allows."""
    guard.safe()
    verdict = await _guard(guard.base_url).check(TEXT)
    assert verdict == ModerationVerdict(allowed=True, reason=None, layer="llama-guard")


@pytest.mark.parametrize("categories", [("S4",), ("S1", "S4"), ("S4", "S12"), ("S3", "S4", "S14")])
async def test_llama_guard_refuses_child_exploitation(guard: FakeLlamaGuard, categories: tuple[str, ...]) -> None:
    """ "unsafe" listing S4, alone or among others, refuses with reason S4."""
    guard.unsafe(*categories)
    verdict = await _guard(guard.base_url).check(TEXT)
    assert verdict == ModerationVerdict(allowed=False, reason="S4", layer="llama-guard")


@pytest.mark.parametrize("categories", [("S12",), ("S1", "S14"), ("S3",)])
async def test_llama_guard_allows_unsafe_without_s4(guard: FakeLlamaGuard, categories: tuple[str, ...]) -> None:
    """Other Llama Guard categories (adult sexual content S12...) are the rules' business."""
    guard.unsafe(*categories)
    assert (await _guard(guard.base_url).check(TEXT)).allowed


async def test_llama_guard_request_carries_model_and_text(guard: FakeLlamaGuard) -> None:
    """The text is the single user turn of the conversation; the configured model is named; output is bounded."""
    await _guard(guard.base_url).check(TEXT)
    (body,) = guard.checks()
    assert body["model"] == "llama-guard3:8b"
    assert body["messages"] == [{"role": "user", "content": TEXT}]
    assert body["temperature"] == 0
    assert 0 < body["max_tokens"] <= 50


@pytest.mark.parametrize("answer", ["I cannot help with that.", "unsafe", "unsafe\nchildren", "safe\nS4", "", "maybe"])
async def test_llama_guard_malformed_answer_fails_closed(guard: FakeLlamaGuard, answer: str) -> None:
    """An answer that is neither "safe" nor "unsafe" with categories raises `ModerationUnavailable`."""
    guard.say(answer)
    with pytest.raises(ModerationUnavailable):
        await _guard(guard.base_url).check(TEXT)


@pytest.mark.parametrize(
    "body",
    [
        {"id": "chatcmpl-1", "object": "chat.completion", "choices": []},
        {"id": "chatcmpl-1", "object": "chat.completion"},
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "stop"}]},
        {"choices": [{"index": 0, "message": "safe", "finish_reason": "stop"}]},
        {"choices": ["safe"]},
        ["safe"],
    ],
)
async def test_llama_guard_malformed_completion_fails_closed(guard: FakeLlamaGuard, body: Any) -> None:
    """A completion without a text answer raises `ModerationUnavailable`."""
    guard.malformed(json=body)
    with pytest.raises(ModerationUnavailable):
        await _guard(guard.base_url).check(TEXT)


@pytest.mark.parametrize(("body", "content_type"), [(b"safe", "text/plain"), (b'{"choices": [', "application/json")])
async def test_llama_guard_non_json_answer_fails_closed(guard: FakeLlamaGuard, body: bytes, content_type: str) -> None:
    """A 200 that is not JSON - even one reading "safe" - raises `ModerationUnavailable`."""
    guard.malformed(body=body, content_type=content_type)
    with pytest.raises(ModerationUnavailable):
        await _guard(guard.base_url).check(TEXT)


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_llama_guard_error_status_fails_closed(guard: FakeLlamaGuard, status: int) -> None:
    """Server errors and rate limits raise `ModerationUnavailable`."""
    guard.fail(status)
    with pytest.raises(ModerationUnavailable):
        await _guard(guard.base_url).check(TEXT)


async def test_llama_guard_timeout_fails_closed(guard: FakeLlamaGuard) -> None:
    """A slow classifier past the timeout raises `ModerationUnavailable`."""
    guard.safe(delay=1.0)
    with pytest.raises(ModerationUnavailable, match="timed out"):
        await _guard(guard.base_url, timeout=0.2).check(TEXT)


async def test_llama_guard_connection_refused_fails_closed() -> None:
    """An unreachable classifier raises `ModerationUnavailable`."""
    with pytest.raises(ModerationUnavailable, match="unreachable"):
        await _guard(await _closed_port_url()).check(TEXT)


@pytest.mark.parametrize(
    ("answer", "categories"),
    [
        ("safe", ()),
        ("\n\nsafe\n", ()),
        ("unsafe\nS4", ("S4",)),
        ("\nunsafe\nS1, S4", ("S1", "S4")),
        ("unsafe\ns4,s12", ("S4", "S12")),
        ("unsafe\nS4\nS12", None),
        ("unsafe\nS4;S12", None),
        ("safe, probably", None),
    ],
)
def test_parse_llama_guard(answer: str, categories: tuple[str, ...] | None) -> None:
    """The Llama Guard answer grammar: "safe" | "unsafe" NEWLINE "S<n>[,S<n>...]"; anything else is None."""
    assert parse_llama_guard(answer) == categories


# -- settings and wiring ----------------------------------------------------------------------------------------


def test_production_without_moderation_names_the_keys(make_settings: SettingsFactory) -> None:
    """Production without a moderation layer refuses to start, naming MODERATION_BASE_URL and MODERATION_API_KEY."""
    settings = make_settings(**PRODUCTION_BASE | {"moderation_base_url": None, "moderation_api_key": None})
    with pytest.raises(MissingSettingsError) as info:
        settings.check()
    assert info.value.missing == ["MODERATION_BASE_URL", "MODERATION_API_KEY"]
    assert "MODERATION_BASE_URL, MODERATION_API_KEY" in str(info.value)
    with pytest.raises(ConfigError, match="MODERATION_BASE_URL"):
        build_moderation(settings)


def test_production_with_moderation_disabled_starts_and_warns(
    make_settings: SettingsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """MODERATION_DISABLED=true lets production start on the rules alone, with a WARNING at start."""
    settings = make_settings(
        **PRODUCTION_BASE | {"moderation_base_url": None, "moderation_api_key": None, "moderation_disabled": True}
    )
    settings.check()
    with caplog.at_level(logging.WARNING, logger="ava_bot.settings"):
        settings.log_fallbacks()
    warnings = [r for r in caplog.records if "MODERATION_DISABLED" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert build_moderation(settings) is None


def test_moderation_disabled_read_from_environment(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented environment names reach the settings."""
    make_settings()
    monkeypatch.setenv("MODERATION_DISABLED", "true")
    monkeypatch.setenv("MODERATION_KIND", "llama-guard")
    monkeypatch.setenv("MODERATION_THRESHOLD", "0.2")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.moderation_disabled
    assert settings.moderation_kind == "llama-guard"
    assert settings.moderation_threshold == 0.2


def test_development_without_moderation_says_rules_only(
    make_settings: SettingsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Development without a moderation layer runs on the rules and says so once at start."""
    settings = make_settings()
    settings.check()
    assert build_moderation(settings) is None
    with caplog.at_level(logging.WARNING, logger="ava_bot.settings"):
        settings.log_fallbacks()
    lines = [r.getMessage() for r in caplog.records if "MODERATION" in r.getMessage()]
    assert len(lines) == 1
    assert "rules alone" in lines[0]


def test_half_configured_moderation_is_refused(make_settings: SettingsFactory) -> None:
    """A base URL without a key (or the reverse) is a mistake, not a silent rules-only run."""
    with pytest.raises(ConfigError, match="MODERATION_API_KEY"):
        make_settings(moderation_base_url="http://127.0.0.1:9/v1").check()


@pytest.mark.parametrize(
    ("kind", "model", "expected_class", "expected_model"),
    [
        ("openai", None, OpenAIModeration, DEFAULT_OPENAI_MODEL),
        ("openai", "text-moderation-stable", OpenAIModeration, "text-moderation-stable"),
        ("llama-guard", None, LlamaGuardModeration, DEFAULT_LLAMA_GUARD_MODEL),
        ("llama-guard", "llama-guard3:1b", LlamaGuardModeration, "llama-guard3:1b"),
    ],
)
async def test_build_moderation_picks_the_configured_layer(
    make_settings: SettingsFactory,
    moderations: FakeModerations,
    guard: FakeLlamaGuard,
    kind: str,
    model: str | None,
    expected_class: type[Moderation],
    expected_model: str,
) -> None:
    """MODERATION_KIND chooses the class; MODERATION_MODEL (or the kind's default) is what gets requested."""
    fake = moderations if kind == "openai" else guard
    settings = make_settings(
        moderation_kind=kind, moderation_base_url=fake.base_url, moderation_api_key=KEY, moderation_model=model
    )
    settings.check()
    layer = build_moderation(settings)
    assert isinstance(layer, expected_class)
    assert isinstance(layer, Moderation)
    try:
        assert (await layer.check(TEXT)).allowed
    finally:
        await layer.aclose()
    assert fake.checks()[0]["model"] == expected_model
    assert fake.requests[0].headers["Authorization"] == f"Bearer {KEY}"


async def test_build_moderation_passes_threshold_and_timeout(
    make_settings: SettingsFactory, moderations: FakeModerations
) -> None:
    """MODERATION_THRESHOLD and MODERATION_TIMEOUT_SECONDS reach the layer."""
    settings = make_settings(
        moderation_base_url=moderations.base_url,
        moderation_api_key=KEY,
        moderation_threshold=0.2,
        moderation_timeout_seconds=0.2,
    )
    layer = build_moderation(settings)
    assert isinstance(layer, OpenAIModeration)
    try:
        moderations.answer({"sexual/minors": 0.25}, flagged={"sexual/minors": False})
        assert not (await layer.check(TEXT)).allowed
        for _ in range(3):  # the first try and the client's two retries all time out
            moderations.allow(delay=1.0)
        with pytest.raises(ModerationUnavailable, match="timed out"):
            await layer.check(TEXT)
    finally:
        await layer.aclose()


def test_moderation_disabled_wins_over_configuration(make_settings: SettingsFactory) -> None:
    """An explicit MODERATION_DISABLED=true builds no layer even when one is configured."""
    settings = make_settings(
        moderation_base_url="http://127.0.0.1:9/v1", moderation_api_key=KEY, moderation_disabled=True
    )
    assert build_moderation(settings) is None
