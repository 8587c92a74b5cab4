"""The terms page every user accepts at onboarding (linked from the 18+ confirmation)."""

from __future__ import annotations

from aiohttp import web

from portal.pages import render


async def terms(request: web.Request) -> web.Response:
    """Terms of use: adults only, AI-generated content, provenance, data handling."""
    return await render(request, "terms.html", {})


def setup_legal(app: web.Application) -> None:
    """Register `GET /terms`."""
    app.router.add_get("/terms", terms)
