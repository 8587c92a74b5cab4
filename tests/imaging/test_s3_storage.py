"""`S3PhotoStore`: the real aiobotocore client against moto's S3 in server mode over HTTP, and its wiring."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from ava_bot.wiring import build_originals, build_s3, build_store
from core.errors import ConfigError
from imaging.errors import InvalidStorageKey, PhotoNotStored, StorageError
from imaging.s3 import S3Connection, S3PhotoStore
from imaging.storage import FetchableStore, LocalPhotoStore, PhotoStore
from tests.fakes.s3 import ACCESS_KEY_ID, SECRET_ACCESS_KEY, MotoS3, free_port, unique_bucket

KEY_SHAPE = re.compile(r"^[0-9A-Za-z_-]{2}/[0-9A-Za-z_-]{2}/[0-9A-Za-z_-]{43}\.jpg$")
JPEG = b"\xff\xd8\xff\xe0fake jpeg bytes\xff\xd9"


async def test_round_trip_under_the_prefix(moto: MotoS3, bucket: str, connection: S3Connection) -> None:
    """`put` stores the bytes under a fresh key of the local store's shape, inside the store's prefix."""
    store = S3PhotoStore(connection, "photos")
    assert isinstance(store, PhotoStore)
    key = await store.put(JPEG)
    other = await store.put(JPEG)
    assert KEY_SHAPE.fullmatch(key) and key != other
    assert await store.get(key) == JPEG
    assert await moto.keys(bucket) == sorted([f"photos/{key}", f"photos/{other}"])


async def test_unknown_key_is_not_stored(connection: S3Connection) -> None:
    """A well-formed key nothing was stored under is `PhotoNotStored` (the portal's 404)."""
    store = S3PhotoStore(connection, "photos/")
    with pytest.raises(PhotoNotStored):
        await store.get("ab/cd/" + "x" * 43 + ".jpg")


@pytest.mark.parametrize("key", ["../../etc/passwd", "ab/cd/short.jpg", "/abs/" + "x" * 43 + ".jpg", ""])
async def test_malformed_key_is_refused_before_any_request(key: str) -> None:
    """A key of another shape is `InvalidStorageKey` for get and delete, even with no connection open."""
    store = S3PhotoStore(S3Connection(MotoS3(free_port()).config("never-used")), "photos/")
    with pytest.raises(InvalidStorageKey):
        await store.get(key)
    with pytest.raises(InvalidStorageKey):
        await store.delete(key)


async def test_delete_removes_the_object_and_tolerates_a_second_delete(
    moto: MotoS3, bucket: str, connection: S3Connection
) -> None:
    """After `delete` the key is `PhotoNotStored` and the bucket is empty; deleting again is no error."""
    store = S3PhotoStore(connection, "photos/")
    key = await store.put(JPEG)
    await store.delete(key)
    with pytest.raises(PhotoNotStored):
        await store.get(key)
    await store.delete(key)
    assert await moto.keys(bucket) == []


async def test_served_copies_and_originals_live_apart(moto: MotoS3, bucket: str, connection: S3Connection) -> None:
    """The photos store never reads an original's key, nor deletes it: the prefixes are separate."""
    photos, originals = S3PhotoStore(connection, "photos/"), S3PhotoStore(connection, "originals/")
    original = await originals.put(b"raw original")
    with pytest.raises(PhotoNotStored):
        await photos.get(original)
    await photos.delete(original)
    assert await originals.get(original) == b"raw original"
    assert await moto.keys(bucket) == [f"originals/{original}"]


async def test_global_prefix_comes_first(moto: MotoS3, bucket: str) -> None:
    """S3_PREFIX puts both stores under it (a bucket shared with something else)."""
    async with S3Connection(moto.config(bucket, prefix="ava/")) as connection:
        key = await S3PhotoStore(connection, "photos/").put(JPEG)
    assert await moto.keys(bucket) == [f"ava/photos/{key}"]


async def test_fetch_url_is_a_presigned_get_of_the_object(
    moto: MotoS3, bucket: str, connection: S3Connection, tmp_path: Path
) -> None:
    """`fetch_url` gives a URL that reads exactly the stored object: SigV4-signed in its query for the lifetime
    asked, naming the store's prefix and key. A store on local disk gives none (it is no `FetchableStore`)."""
    store = S3PhotoStore(connection, "originals/")
    key = await store.put(JPEG)
    url = await store.fetch_url(key, expires_in=600)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert url.startswith(moto.url) and parts.path == f"/{bucket}/originals/{key}"
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Expires"] == ["600"]
    assert query["X-Amz-Signature"][0] and query["X-Amz-Credential"][0].startswith(f"{ACCESS_KEY_ID}/")
    async with httpx.AsyncClient() as http:
        answer = await http.get(url)
    assert (answer.status_code, answer.content) == (200, JPEG)
    assert isinstance(store, FetchableStore)
    assert not isinstance(LocalPhotoStore(tmp_path), FetchableStore)


async def test_fetch_url_of_a_missing_or_malformed_key_is_refused(moto: MotoS3, bucket: str) -> None:
    """No URL for nothing: a well-formed key with no object is `PhotoNotStored` (checked with a HEAD), a malformed
    one `InvalidStorageKey` before any request, and an S3 that does not answer a `StorageError`."""
    async with S3Connection(moto.config(bucket)) as connection:
        store = S3PhotoStore(connection, "originals/")
        with pytest.raises(PhotoNotStored):
            await store.fetch_url("ab/cd/" + "q" * 43 + ".jpg", expires_in=60)
        with pytest.raises(InvalidStorageKey):
            await store.fetch_url("../../etc/passwd", expires_in=60)
    async with S3Connection(MotoS3(free_port()).config(bucket, max_attempts=1)) as down:
        with pytest.raises(StorageError) as failure:
            await S3PhotoStore(down, "originals/").fetch_url("ab/cd/" + "q" * 43 + ".jpg", expires_in=60)
    assert not isinstance(failure.value, PhotoNotStored) and "q" * 43 not in str(failure.value)


async def test_credentials_never_logged(
    moto: MotoS3, bucket: str, connection: S3Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the access key id nor the secret appears in any log line (DEBUG included) or repr, also on errors."""
    caplog.set_level(logging.DEBUG)
    store = S3PhotoStore(connection, "photos/")
    key = await store.put(JPEG)
    await store.get(key)
    with pytest.raises(StorageError):
        await S3PhotoStore(connection, "photos/").get("ab/cd/" + "y" * 43 + ".jpg")
    down = S3Connection(MotoS3(free_port()).config(bucket))
    async with down:
        with pytest.raises(StorageError) as failure:
            await S3PhotoStore(down, "photos/").put(JPEG)
    text = "\n".join(r.getMessage() for r in caplog.records)
    text += "\n".join(repr(x) for x in (connection, connection.config, store, failure.value))
    assert caplog.records  # something was logged at DEBUG
    assert ACCESS_KEY_ID not in text and SECRET_ACCESS_KEY not in text


async def test_unreachable_s3_is_a_storage_error_quickly(bucket: str) -> None:
    """With nothing listening, put / get / delete raise `StorageError` (not `PhotoNotStored`) within the timeouts."""
    down = MotoS3(free_port())
    started = time.monotonic()
    async with S3Connection(down.config(bucket, max_attempts=2)) as connection:
        store = S3PhotoStore(connection, "photos/")
        with pytest.raises(StorageError) as put_failure:
            await store.put(JPEG)
        with pytest.raises(StorageError) as get_failure:
            await store.get("ab/cd/" + "z" * 43 + ".jpg")
        with pytest.raises(StorageError):
            await store.delete("ab/cd/" + "z" * 43 + ".jpg")
    assert not isinstance(get_failure.value, PhotoNotStored)
    assert "EndpointConnectionError" in str(put_failure.value) and "/photos/" not in str(put_failure.value)
    assert time.monotonic() - started < 10


async def test_s3_error_answers_are_storage_errors(moto: MotoS3) -> None:
    """An error answer from S3 (here NoSuchBucket) is a `StorageError`, never "not stored"."""
    async with S3Connection(moto.config(unique_bucket())) as connection:
        store = S3PhotoStore(connection, "photos/")
        with pytest.raises(StorageError) as put_failure:
            await store.put(JPEG)
        with pytest.raises(StorageError) as get_failure:
            await store.get("ab/cd/" + "w" * 43 + ".jpg")
    assert "NoSuchBucket" in str(put_failure.value)
    assert not isinstance(get_failure.value, PhotoNotStored)


async def test_closed_connection_is_a_storage_error(moto: MotoS3, bucket: str) -> None:
    """Outside the process's lifetime (before open, after close) the store raises `StorageError`."""
    connection = S3Connection(moto.config(bucket))
    store = S3PhotoStore(connection, "photos/")
    with pytest.raises(StorageError):
        await store.put(JPEG)
    async with connection:
        key = await store.put(JPEG)
    with pytest.raises(StorageError):
        await store.get(key)


# -- wiring ----------------------------------------------------------------------------------------------------


async def test_bucket_setting_chooses_s3(make_settings: Any, moto: MotoS3, bucket: str) -> None:
    """With S3_BUCKET set the stores are S3 ones (photos/ and originals/); without it, local disk."""
    settings = make_settings(**moto.settings(bucket), s3_prefix="/ava/")
    s3 = build_s3(settings)
    assert s3 is not None
    async with s3:
        key = await build_store(settings, s3).put(JPEG)
        original = await build_originals(settings, s3).put(JPEG)
    assert await moto.keys(bucket) == sorted([f"ava/photos/{key}", f"ava/originals/{original}"])
    with pytest.raises(ConfigError):
        build_store(settings)  # a process writing to local disk while its peers use the bucket loses photos
    local = make_settings()
    assert build_s3(local) is None
    assert isinstance(build_store(local), LocalPhotoStore)


@pytest.mark.parametrize("env", ["production", "development"])
@pytest.mark.parametrize(
    ("values", "missing"),
    [
        ({"s3_bucket": "photos"}, "S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY"),
        ({"s3_endpoint_url": "http://minio:9000"}, "S3_BUCKET, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY"),
        ({"s3_bucket": "photos", "s3_access_key_id": "id"}, "S3_SECRET_ACCESS_KEY"),
    ],
)
def test_half_set_s3_settings_refuse_to_start(
    make_settings: Any, env: str, values: dict[str, str], missing: str
) -> None:
    """S3 settings given in part stop start-up with one message naming what is missing (in production along with
    every other missing setting)."""
    settings = make_settings(ava_env=env, **values)
    with pytest.raises(ConfigError) as refused:
        settings.check()
    expected = f", {missing}. Set them" if env == "production" else f"half-configured: {missing} unset"
    assert expected in str(refused.value)
