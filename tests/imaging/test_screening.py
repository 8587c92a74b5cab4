"""Screening before generation (each field alone, the scene alone, the prompt; rules and the moderation model,
fail closed) and the clean reference (later photos conditioned on the private, unwatermarked original)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.models import DeadLetter, SafetyRefusal
from core.safety import SafetyChecker
from imaging.erasure import erase_photo_files
from imaging.models import Photo, PhotoAudit, PhotoStatus
from imaging.moderation import OpenAIModeration
from imaging.safety import check_field
from imaging.storage import LocalPhotoStore
from tests.fakes.moderation import FakeModerations
from tests.imaging.pipeline_env import Env, _approve, _avatar, _request


@pytest.fixture
async def moderations() -> AsyncIterator[FakeModerations]:
    async with FakeModerations() as fake:
        yield fake


def checker(moderations: FakeModerations) -> SafetyChecker:
    moderation = OpenAIModeration(
        base_url=moderations.base_url, api_key="sk-mod", model="omni-moderation-latest", max_retries=0
    )
    return SafetyChecker(check_field, moderation)


async def test_a_field_the_rules_refuse_alone_blocks_the_photo_despite_the_adult_clause(env: Env) -> None:
    """An older avatar's appearance is checked alone again: the prompt's "N-year-old adult" does not disarm it."""
    avatar = await _avatar()
    avatar.appearance = "very young girl with a baby face"
    await avatar.save()
    photo_id = await _request(env, avatar, kind="reference", key="ref")
    await env.work()
    photo = await Photo.get(id=photo_id)
    assert photo.status == PhotoStatus.BLOCKED and env.creates("black-forest-labs/flux-1.1-pro") == 0
    (refusal,) = await SafetyRefusal.filter(photo_id=photo_id)
    assert (refusal.field, refusal.layer, refusal.channel) == ("appearance", "rules", "telegram")
    audit = await PhotoAudit.filter(photo_id=photo_id, event="blocked").get()
    assert audit.safety_allowed is False and "appearance refused by rules" in (audit.safety_reason or "")
    assert [e.status for e in env.hooks.finished] == ["blocked"]


async def test_a_scene_is_checked_alone_by_both_layers(env: Env, moderations: FakeModerations) -> None:
    """The model refusing the scene blocks the photo before any provider call; the refusal names its layer."""
    avatar = await _avatar()
    avatar.reference_photo_id = 1
    await avatar.save()
    moderations.refuse()
    photo_id = await _request(env, avatar, scene="on the bed, innocent pose", key="chat:1")
    await env.work(env.pipeline(safety=checker(moderations)))
    photo = await Photo.get(id=photo_id)
    assert photo.status == PhotoStatus.BLOCKED and env.creates("black-forest-labs/flux-kontext-pro") == 0
    (refusal,) = await SafetyRefusal.filter(photo_id=photo_id)
    assert (refusal.field, refusal.layer, refusal.code) == ("scene", "openai-moderation", "sexual/minors")
    assert moderations.checks()[0]["input"] == "on the bed, innocent pose"


async def test_moderation_unreachable_fails_closed_retries_then_dead_letters(
    env: Env, moderations: FakeModerations
) -> None:
    """With the model down the photo is never made: it retries, then fails, is dead-lettered and the user told."""
    avatar = await _avatar()
    for _ in range(3):
        moderations.fail(503)
    photo_id = await _request(env, avatar, kind="reference", key="ref")
    await env.work(env.pipeline(safety=checker(moderations)))
    photo = await Photo.get(id=photo_id)
    assert photo.status == PhotoStatus.FAILED and "ModerationUnavailable" in (photo.error or "")
    assert env.creates("black-forest-labs/flux-1.1-pro") == 0  # never generated unchecked
    assert await DeadLetter.filter(payload__contains={"photo_id": photo_id}).count() == 1
    assert [e.status for e in env.hooks.finished] == ["failed"]


async def test_later_photos_are_conditioned_on_the_private_unwatermarked_original(env: Env, tmp_path: Path) -> None:
    """The reference's provider original is kept apart and sent as `input_image`; the served copy is signed."""
    originals = LocalPhotoStore(tmp_path / "originals")
    pipeline = env.pipeline(originals=originals)
    avatar = await _avatar()
    ref_id = await _request(env, avatar, kind="reference", key="ref")
    await env.work(pipeline)
    reference = await Photo.get(id=ref_id)
    assert reference.status == PhotoStatus.READY and reference.original_key and reference.storage_key
    original = await originals.get(reference.original_key)
    assert original == env.fake.jpeg  # exactly what the provider made: no watermark, no manifest
    assert await env.store.get(reference.storage_key) != original
    assert not (env.store.root / reference.original_key).exists()  # apart from the served photos
    await _approve(avatar, ref_id)

    photo_id = await _request(env, avatar, key="chat:1")
    await env.work(pipeline)
    assert (await Photo.get(id=photo_id)).status == PhotoStatus.READY
    expected = "data:image/jpeg;base64," + base64.b64encode(original).decode()
    assert env.fake.created[-1].input["input_image"] == expected

    deleted = await erase_photo_files(avatar.user_id, store=env.store, originals=originals)  # type: ignore[attr-defined]
    assert deleted == 3  # two signed copies and the original
    assert not any(p.is_file() for p in originals.root.rglob("*"))
