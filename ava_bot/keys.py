"""Typed `web.AppKey`s for what the aiohttp app holds: settings and clients only, never state."""

from __future__ import annotations

from aiohttp import web
from arq.connections import ArqRedis

from ava_bot.settings import Settings
from ava_bot.wiring import Services

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", ArqRedis)
SERVICES = web.AppKey("services", Services)
