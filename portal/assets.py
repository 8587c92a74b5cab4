"""Static assets of the portal (`GET /static/{name}`): the one stylesheet, the chat script, the favicon.

Pages link an asset through the template global `static_url(name)`, which appends a short content hash
(`/static/ava.css?v=1a2b3c4d5e6f`). A request carrying the current hash is cached by browsers for a year
(`immutable`): a changed file gets a new hash, so a new URL. A request without it (or with an old one) gets
`no-cache`, so it is revalidated and never stale. Only files directly in `portal/static/` with a known type
are served (no directories, no dot-files, no path tricks).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from aiohttp import hdrs, web

#: Where the files live (inside the package, so they ship with it).
STATIC_DIR = Path(__file__).parent / "static"
#: One year: the longest lifetime browsers honour.
LONG_CACHE = "public, max-age=31536000, immutable"
#: Without the current hash: revalidate every time (an ETag keeps that cheap).
SHORT_CACHE = "no-cache"
_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One static file, read once: its bytes, content type and content hash."""

    body: bytes
    content_type: str
    digest: str


class StaticAssets:
    """The files of a directory, hashed on first use, served with cache headers keyed on the hash."""

    def __init__(self, directory: Path = STATIC_DIR) -> None:
        """Serve the files directly in `directory`."""
        self._directory = directory
        self._cache: dict[str, Asset] = {}

    def asset(self, name: str) -> Asset | None:
        """The asset called `name`, or None when there is no such servable file."""
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        suffix = Path(name).suffix
        if "/" in name or "\\" in name or name.startswith(".") or suffix not in _TYPES:
            return None
        path = self._directory / name
        if not path.is_file():
            return None
        body = path.read_bytes()
        asset = Asset(body=body, content_type=_TYPES[suffix], digest=hashlib.sha256(body).hexdigest()[:12])
        self._cache[name] = asset
        return asset

    def url(self, name: str) -> str:
        """The versioned URL of `name` for a page (`/static/{name}?v={hash}`); unversioned if it is missing."""
        asset = self.asset(name)
        return f"/static/{name}" if asset is None else f"/static/{name}?v={asset.digest}"

    async def handle(self, request: web.Request) -> web.Response:
        """`GET /static/{name}`: the file with long caching for the current hash, revalidation otherwise."""
        asset = self.asset(request.match_info["name"])
        if asset is None:
            raise web.HTTPNotFound()
        etag = f'"{asset.digest}"'
        headers = {
            hdrs.CACHE_CONTROL: LONG_CACHE if request.query.get("v") == asset.digest else SHORT_CACHE,
            hdrs.ETAG: etag,
            "X-Content-Type-Options": "nosniff",
        }
        if request.headers.get(hdrs.IF_NONE_MATCH) == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=asset.body, headers={**headers, hdrs.CONTENT_TYPE: asset.content_type})


def setup_assets(app: web.Application, assets: StaticAssets | None = None) -> StaticAssets:
    """Add `GET /static/{name}` to `app`; returns the assets (for the templates' `static_url`)."""
    assets = assets or StaticAssets()
    app.router.add_get("/static/{name}", assets.handle)
    return assets
