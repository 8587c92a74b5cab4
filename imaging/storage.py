"""Photo storage: the `PhotoStore` port and `LocalPhotoStore`, files under MEDIA_DIR.

Keys are unguessable (256 random bits) and sharded into two directory levels so no directory grows huge.
Knowing a key is still not enough to see a photo: files are never served statically, only through the
portal's photo route, which checks the signed link or the owner's session. Writes are atomic (a temporary
file in the same directory, fsync, `os.replace`), so a crash never leaves a half-written photo under a key.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Protocol, runtime_checkable

from imaging.errors import InvalidStorageKey, PhotoNotStored, StorageError

_KEY = re.compile(r"^[0-9A-Za-z_-]{2}/[0-9A-Za-z_-]{2}/[0-9A-Za-z_-]{43}\.[a-z0-9]{1,8}$")
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,8}$")
FILE_MODE = 0o600
DIR_MODE = 0o700


def new_key(suffix: str = ".jpg") -> str:
    """A fresh unguessable key of the one shape every store issues (`ValueError` for a bad suffix)."""
    if not _SUFFIX.fullmatch(suffix):
        raise ValueError(f"invalid suffix {suffix!r}")
    token = secrets.token_urlsafe(32)  # 43 characters, 256 bits
    return f"{token[:2]}/{token[2:4]}/{token}{suffix}"


def check_key(key: str) -> str:
    """`key` when it has the shape stores issue, else `InvalidStorageKey` (no "..", no absolute paths)."""
    if not _KEY.fullmatch(key):
        raise InvalidStorageKey(f"invalid storage key {key!r}")
    return key


@runtime_checkable
class PhotoStore(Protocol):
    """Where finished photos live; keys are opaque and unguessable."""

    async def put(self, data: bytes, *, suffix: str = ".jpg") -> str:
        """Store `data` under a new key and return the key."""
        ...

    async def get(self, key: str) -> bytes:
        """The bytes stored under `key`; `PhotoNotStored` when there are none."""
        ...

    async def delete(self, key: str) -> None:
        """Remove what is stored under `key` (no error when nothing is)."""
        ...


@runtime_checkable
class FetchableStore(Protocol):
    """A store whose objects another service can fetch by a short-lived URL (S3's presigned GET)."""

    async def fetch_url(self, key: str, *, expires_in: int) -> str:
        """A URL of the object under `key`, valid `expires_in` seconds; `PhotoNotStored` when there is none.

        The URL is a capability (whoever holds it can read the object until it expires): never log it."""
        ...


class LocalPhotoStore:
    """A `PhotoStore` on the local file system (a shared volume when web and worker run apart)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalPhotoStore({str(self.root)!r})"

    async def put(self, data: bytes, *, suffix: str = ".jpg") -> str:
        """Write `data` atomically under a fresh random key (files 0600, directories 0700)."""
        key = new_key(suffix)
        await asyncio.to_thread(self._write, key, data)
        return key

    async def get(self, key: str) -> bytes:
        """The stored bytes; `InvalidStorageKey` for a malformed key, `PhotoNotStored` when absent."""
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise PhotoNotStored(f"nothing stored under {key!r}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {key!r}: {exc}") from exc

    async def delete(self, key: str) -> None:
        """Remove the file under `key` if it exists."""
        path = self._path(key)
        try:
            await asyncio.to_thread(path.unlink, True)
        except OSError as exc:
            raise StorageError(f"cannot delete {key!r}: {exc}") from exc

    def _path(self, key: str) -> Path:
        # Only keys of our own shape are accepted: no "..", no absolute paths, no separators beyond the shards.
        return self.root / check_key(key)

    def _write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            self._make_dirs(path.parent)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as handle:  # mkstemp creates the file 0600
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StorageError(f"cannot store photo: {exc}") from exc

    def _make_dirs(self, directory: Path) -> None:
        """Create the root and shard directories 0700 (explicit chmod: `mkdir` modes pass through the umask)."""
        for level in (self.root, directory.parent, directory):
            if not level.is_dir():
                level.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
                os.chmod(level, DIR_MODE)
