"""References by URL: with S3 stores and `reference_by_url`, a photo's reference reaches the provider as a presigned
URL of its private original, which the fake Replicate fetches as Replicate does (real arq worker, real Replicate
client, moto's S3 over HTTP); and how it ends when that URL cannot be had or cannot be fetched."""

from __future__ import annotations

import base64
import logging
from urllib.parse import parse_qs, urlsplit

import pytest

from core.models import Avatar, DeadLetter
from imaging.models import Photo, PhotoAudit, PhotoStatus
from imaging.pipeline import REFERENCE_URL_SECONDS, PhotoPipeline
from imaging.s3 import S3Connection, S3PhotoStore
from imaging.storage import new_key
from tests.imaging.pipeline_env import EDIT_MODEL, Env, _ready_reference, _request


class StaleLinks(S3PhotoStore):
    """Originals whose URLs name an object that is not there (a link gone stale): the provider's fetch fails."""

    async def fetch_url(self, key: str, *, expires_in: int) -> str:
        url = await super().fetch_url(key, expires_in=expires_in)
        return url.replace(key, new_key())


def _pipeline(env: Env, connection: S3Connection, *, by_url: bool = True, stale: bool = False) -> PhotoPipeline:
    originals = (StaleLinks if stale else S3PhotoStore)(connection, "originals/")
    return env.pipeline(store=S3PhotoStore(connection, "photos/"), originals=originals, reference_by_url=by_url)


async def _approved_reference(env: Env, pipeline: PhotoPipeline) -> tuple[Avatar, Photo]:
    avatar, reference = await _ready_reference(env, pipeline)
    assert reference.original_key is not None
    return avatar, reference


async def test_the_provider_fetches_the_original_by_a_presigned_url(env: Env, connection: S3Connection) -> None:
    """The photo's `input_image` is a presigned GET of the reference's private original, valid
    REFERENCE_URL_SECONDS; the provider fetched exactly the original's bytes through it, and the photo is ready."""
    pipeline = _pipeline(env, connection)
    avatar, reference = await _approved_reference(env, pipeline)
    photo_id = await _request(env, avatar, key="chat:1")
    await env.work(pipeline)

    photo = await Photo.get(id=photo_id)
    assert photo.status == PhotoStatus.READY and photo.model == EDIT_MODEL and photo.attempts == 1
    sent = env.fake.created[1].input["input_image"]
    url = urlsplit(sent)
    assert url.path.endswith(f"/originals/{reference.original_key}")
    assert parse_qs(url.query)["X-Amz-Expires"] == [str(REFERENCE_URL_SECONDS)]
    original = await S3PhotoStore(connection, "originals/").get(reference.original_key or "")
    assert env.fake.fetched == [(sent, 200, original)]


async def test_without_reference_by_url_the_bytes_go_inline(env: Env, connection: S3Connection) -> None:
    """Where the provider cannot reach the bucket (the setting off), the worker reads the original from S3 and
    sends it as a data URI: nothing is fetched by URL."""
    pipeline = _pipeline(env, connection, by_url=False)
    avatar, reference = await _approved_reference(env, pipeline)
    await _request(env, avatar, key="chat:1")
    await env.work(pipeline)

    original = await S3PhotoStore(connection, "originals/").get(reference.original_key or "")
    assert env.fake.created[1].input["input_image"] == "data:image/jpeg;base64," + base64.b64encode(original).decode()
    assert env.fake.fetched == []


async def test_a_missing_original_fails_the_photo_before_the_provider_is_paid(
    env: Env, connection: S3Connection
) -> None:
    """An original gone from the bucket is found before any URL is handed out: the photo fails for good at once
    (dead-lettered, the user told), with no prediction created for it."""
    pipeline = _pipeline(env, connection)
    avatar, reference = await _approved_reference(env, pipeline)
    await S3PhotoStore(connection, "originals/").delete(reference.original_key or "")
    photo_id = await _request(env, avatar, key="chat:1")
    await env.work(pipeline)

    photo = await Photo.get(id=photo_id)
    assert photo.status == PhotoStatus.FAILED and "cannot be read" in (photo.error or "")
    assert len(env.fake.created) == 1  # the reference's own prediction only
    assert await DeadLetter.filter(payload__contains={"photo_id": photo_id}).count() == 1
    assert env.hooks.finished[-1].status == "failed"


async def test_a_link_the_provider_cannot_fetch_ends_in_a_dead_letter_without_leaking_it(
    env: Env, connection: S3Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """When the provider cannot fetch the reference (its prediction fails quoting the URL), the photo is retried,
    then fails and is dead-lettered; the URL, a capability, appears in no log line, error, dead letter or audit row,
    not even its path (the object's unguessable key)."""
    caplog.set_level(logging.DEBUG)
    pipeline = _pipeline(env, connection, stale=True)
    avatar, _ = await _approved_reference(env, pipeline)
    photo_id = await _request(env, avatar, key="chat:1")
    await env.work(pipeline)

    photo = await Photo.get(id=photo_id)
    assert photo.status == PhotoStatus.FAILED and photo.attempts == pipeline.max_attempts
    fetches = env.fake.fetched
    assert len(fetches) == pipeline.max_attempts and all(status == 404 for _, status, _ in fetches)
    letter = await DeadLetter.get(payload__contains={"photo_id": photo_id})
    audits = [str(a.error) + str(a.prompt) for a in await PhotoAudit.filter(photo_id=photo_id)]
    said = [photo.error or "", letter.error, *audits, *(r.getMessage() for r in caplog.records)]
    assert "Failed to download input file" in (photo.error or "")
    for url, _, _ in fetches:
        secret_parts = (urlsplit(url).query, urlsplit(url).path)
        assert not [text for text in said for part in secret_parts if part in text]
    assert not [text for text in said if "X-Amz-" in text]
