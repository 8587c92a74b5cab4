"""`LocalPhotoStore`: unguessable sharded keys, atomic private files, no path traversal."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from imaging.errors import InvalidStorageKey, PhotoNotStored
from imaging.storage import LocalPhotoStore, PhotoStore

DATA = b"\xff\xd8\xff\xe0 not really a jpeg"


@pytest.fixture
def store(tmp_path: Path) -> LocalPhotoStore:
    """A store rooted in a not-yet-existing directory."""
    return LocalPhotoStore(tmp_path / "media" / "photos")


def test_local_store_satisfies_the_port(store: LocalPhotoStore) -> None:
    """`LocalPhotoStore` is a `PhotoStore`."""
    assert isinstance(store, PhotoStore)


async def test_put_then_get_round_trips(store: LocalPhotoStore) -> None:
    """Bytes put under a key come back unchanged."""
    key = await store.put(DATA)
    assert await store.get(key) == DATA


async def test_keys_are_random_sharded_and_carry_the_suffix(store: LocalPhotoStore) -> None:
    """Keys are two shard levels plus 43 random url-safe characters, different every time."""
    keys = {await store.put(DATA, suffix=".jpg") for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        first, second, name = key.split("/")
        assert len(first) == len(second) == 2
        assert name.endswith(".jpg") and len(name) == 43 + 4
        assert name.startswith(first + second)


async def test_files_are_0600_and_directories_0700(store: LocalPhotoStore) -> None:
    """Stored files are readable by the service user only, and so are the directories."""
    key = await store.put(DATA)
    path = store.root / key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (path.parent, path.parent.parent, store.root):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


async def test_no_temporary_files_are_left_behind(store: LocalPhotoStore) -> None:
    """The atomic write leaves only the final file in its shard directory."""
    key = await store.put(DATA)
    assert [p.name for p in (store.root / key).parent.iterdir()] == [key.rsplit("/", 1)[1]]


@pytest.mark.parametrize(
    "key",
    [
        "../secret.jpg",
        "ab/cd/../../../etc/passwd",
        "/etc/passwd",
        "ab/cd/" + "x" * 43,
        "ab/cd/" + "." * 43 + ".jpg",
        "ab\\cd\\" + "x" * 43 + ".jpg",
        "",
    ],
)
async def test_keys_it_never_issued_are_rejected(store: LocalPhotoStore, key: str) -> None:
    """Malformed or traversing keys are refused before touching the file system."""
    with pytest.raises(InvalidStorageKey):
        await store.get(key)
    with pytest.raises(InvalidStorageKey):
        await store.delete(key)


async def test_invalid_suffix_is_rejected(store: LocalPhotoStore) -> None:
    """A suffix with separators cannot smuggle a path into the key."""
    with pytest.raises(ValueError):
        await store.put(DATA, suffix="/../x")


async def test_missing_key_raises_not_stored(store: LocalPhotoStore) -> None:
    """A well-formed key with no file raises `PhotoNotStored`."""
    key = await store.put(DATA)
    await store.delete(key)
    with pytest.raises(PhotoNotStored):
        await store.get(key)


async def test_delete_is_idempotent(store: LocalPhotoStore) -> None:
    """Deleting twice is fine."""
    key = await store.put(DATA)
    await store.delete(key)
    await store.delete(key)
    assert not (store.root / key).exists()
