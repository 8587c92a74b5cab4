"""Ava's composition root: settings, app factory, worker settings and the `ava-bot` CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ava-bot")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
