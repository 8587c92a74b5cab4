"""The terms every user accepts at onboarding (linked from the 18+ confirmation) and the privacy notice."""

from __future__ import annotations

from aiohttp import web

from portal.pages import render


async def terms(request: web.Request) -> web.Response:
    """Terms of use: adults only, AI-generated content, provenance, data handling."""
    return await render(request, "terms.html", {})


async def privacy(request: web.Request) -> web.Response:
    """Privacy notice: what is kept, who else sees it (providers, Stripe, chat platforms), cookies, deletion."""
    return await render(request, "privacy.html", {})


def setup_legal(app: web.Application) -> None:
    """Register `GET /terms` and `GET /privacy`."""
    app.router.add_get("/terms", terms)
    app.router.add_get("/privacy", privacy)
