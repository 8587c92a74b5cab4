"""Typed `web.AppKey`s for what the aiohttp app holds: settings and clients only, never state."""

from __future__ import annotations

from aiohttp import web
from arq.connections import ArqRedis

from ava_bot.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", ArqRedis)
