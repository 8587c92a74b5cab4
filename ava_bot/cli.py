"""The `ava-bot` command line: a thin layer that builds Settings once and starts a process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web
from telegram.error import TelegramError
from tortoise.exceptions import OperationalError

from ava_bot.admin import add_admin_commands, run_grant, run_users_show
from ava_bot.audit import blocked_lines, parse_since
from ava_bot.db import close_db, init_db, run_migrations
from ava_bot.deadletters import list_dead_letters
from ava_bot.deadletters import replay as replay_letter
from ava_bot.keys import SERVICES
from ava_bot.observability import init_sentry, setup_logging
from ava_bot.runtime import freeze_startup_objects, new_event_loop, run, running_loop_name
from ava_bot.settings import Settings, load_settings
from ava_bot.wiring import build_billing, build_plans, open_photo_pipeline, open_resources, open_services
from ava_bot.worker import create_worker
from billing.plans import sync_plans
from channels.telegram import TELEGRAM, TelegramChannel, TelegramWebhook, build_bot, set_webhook
from channels.telegram.polling import poll_updates
from core.delivery import set_reachable
from core.errors import ConfigError, NotReplayable, ValidationFailed
from core.messages import ChatRef
from imaging.certs import create_dev_certificates
from imaging.errors import CertificateFilesExist

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ava-bot", description="Ava companion-bot service.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the web process (webhooks, portal, /health, /ready)")
    commands.add_parser("worker", help="run the arq worker (turns, photos, sweepers)")
    commands.add_parser("migrate", help="apply database migrations")
    dev = commands.add_parser("dev", help="web + worker in one process on embedded development defaults")
    dev.add_argument("--port", type=int, default=None, help="port to listen on (default: PORT or 8080)")
    certs = commands.add_parser("certs", help="C2PA signing certificates")
    certs_commands = certs.add_subparsers(dest="certs_command", required=True)
    certs_dev = certs_commands.add_parser("dev", help="create a local CA + signing certificate (development only)")
    certs_dev.add_argument("--dir", type=Path, default=Path("certs"), help="output directory (default: ./certs)")
    certs_dev.add_argument("--force", action="store_true", help="overwrite existing files")
    letters = commands.add_parser("deadletters", help="work that failed for good: turns, deliveries, photos")
    letters_commands = letters.add_subparsers(dest="letters_command", required=True)
    letters_list = letters_commands.add_parser("list", help="list dead letters, newest first")
    letters_list.add_argument("--all", action="store_true", help="include replayed ones")
    letters_list.add_argument("--limit", type=int, default=50)
    letters_replay = letters_commands.add_parser("replay", help="run a dead letter's work again (fresh attempts)")
    letters_replay.add_argument("id", type=int)
    telegram = commands.add_parser("telegram", help="Telegram bot set-up")
    telegram_commands = telegram.add_subparsers(dest="telegram_command", required=True)
    telegram_commands.add_parser(
        "set-webhook", help="register PUBLIC_BASE_URL/webhooks/telegram with the secret, updates and command menu"
    )
    plans = commands.add_parser("plans", help="subscription plans (the plans file)")
    plans_commands = plans.add_subparsers(dest="plans_command", required=True)
    plans_commands.add_parser("sync", help="check PLANS_FILE and write it to the database (also done at every start)")
    add_admin_commands(commands)  # grant, users show
    audit = commands.add_parser("audit", help="review the audit log")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    blocked = audit_commands.add_parser("blocked", help="safety refusals: fields, scenes and prompts")
    blocked.add_argument("--since", default="7d", help="a date, a date-time or a span like 24h or 7d (default 7d)")
    blocked.add_argument("--limit", type=int, default=500)
    return parser


def certs_dev(directory: Path, *, force: bool) -> int:
    """Write development C2PA certificates and print the settings that use them."""
    try:
        made = create_dev_certificates(directory, force=force)
    except CertificateFilesExist as exc:
        print(f"ava-bot: {exc} (use --force to replace them)", file=sys.stderr)
        return 1
    print(f"Development C2PA certificates written to {directory}/ (NOT for production). Add to .env:")
    print(f"C2PA_CERT_CHAIN={made.chain}\nC2PA_PRIVATE_KEY={made.signer_key}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ava-bot` console script."""
    args = _parser().parse_args(argv)
    if args.command == "certs":  # needs no settings: it only writes files
        return certs_dev(args.dir, force=args.force)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"ava-bot: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings)
    settings.log_fallbacks()
    init_sentry(settings)
    try:
        match args.command:
            case "serve":
                from ava_bot.app import create_app  # here: the worker never loads the web app (portal, jinja2)

                async def started_app() -> web.Application:
                    logger.info("web process starting on the %s event loop", running_loop_name())
                    app = await create_app(settings)
                    app.on_startup.append(_freeze)  # runs after the resources and services opened
                    return app

                web.run_app(
                    started_app(),
                    host=settings.effective_host,
                    port=settings.port,
                    print=None,
                    # SIGTERM: stop accepting, let in-flight requests finish this long, then close clients.
                    shutdown_timeout=settings.shutdown_grace_seconds,
                    loop=new_event_loop(settings.event_loop),
                )
            case "worker":
                run(run_worker(settings), settings.event_loop)
            case "migrate":
                asyncio.run(run_migrations(settings.effective_database_url))
            case "deadletters":
                return asyncio.run(run_deadletters(settings, args))
            case "grant":
                return asyncio.run(run_grant(settings, args))
            case "users":
                return asyncio.run(run_users_show(settings, args))
            case "audit":
                return asyncio.run(run_audit(settings, args))
            case "telegram":
                return asyncio.run(run_telegram_set_webhook(settings))
            case "plans":
                return asyncio.run(run_plans_sync(settings))
            case "dev":
                port = args.port or settings.port
                run(run_dev(settings.model_copy(update={"port": port}), port=port), settings.event_loop)
    except ConfigError as exc:
        print(f"ava-bot: {exc}", file=sys.stderr)
        return 2
    except OperationalError as exc:
        if not _missing_table(exc):
            raise
        print(f"ava-bot: the database has no Ava tables yet ({exc}): run `ava-bot migrate` first", file=sys.stderr)
        return 2
    return 0


def _missing_table(exc: OperationalError) -> bool:
    """An error of a database the migrations never ran on (SQLite and PostgreSQL wording)."""
    text = str(exc)
    return "no such table" in text or ("relation" in text and "does not exist" in text)


async def run_plans_sync(settings: Settings) -> int:
    """`ava-bot plans sync`: validate the plans file (as a start does) and write it to the `Plan` table."""
    billing = build_billing(settings)  # a bad plans file raises ConfigError: one message, exit 2
    await init_db(settings.effective_database_url)
    try:
        result = await billing.sync_plans()
    finally:
        await close_db()
        await billing.aclose()
    for config in billing.plan_configs:
        price = config.price_id or f"no price id ({config.entry.price_id_env} unset)"
        print(f"{config.code}: {config.entry.name}{' (default)' if config.is_default else ''}, {price}")
    print(f"created {len(result.created)}, updated {len(result.updated)}, deactivated {len(result.deactivated)}")
    return 0


async def _freeze(app: web.Application) -> None:
    freeze_startup_objects()


async def run_worker(settings: Settings) -> None:
    """Run the standalone arq worker until SIGINT/SIGTERM (the plans file is checked and synced first)."""
    plans = build_plans(settings)  # checked as the web app checks them, without a Stripe client (never used here)
    async with (
        open_resources(settings) as resources,
        open_services(settings, resources.redis) as services,
        open_photo_pipeline(settings, services) as pipeline,
    ):
        await sync_plans(plans)
        worker = create_worker(settings, resources, services, pipeline)
        freeze_startup_objects()
        logger.info("worker starting on the %s event loop", running_loop_name())
        try:
            await worker.async_run()
        except asyncio.CancelledError:
            # arq ends its main task by cancelling it on SIGTERM/SIGINT (after the running jobs' grace
            # period): the normal way a worker stops, not an error (exit status 0, no traceback).
            logger.info("worker stopped")
        finally:
            await worker.close()


async def run_deadletters(settings: Settings, args: argparse.Namespace) -> int:
    """`ava-bot deadletters list|replay`."""
    async with open_resources(settings) as resources:
        if args.letters_command == "list":
            lines = await list_dead_letters(include_replayed=args.all, limit=args.limit)
            print("\n".join(lines) if lines else "no dead letters")
            return 0
        try:
            print(await replay_letter(resources.redis, args.id))
        except NotReplayable as exc:
            print(f"ava-bot: {exc}", file=sys.stderr)
            return 1
        return 0


async def run_telegram_set_webhook(settings: Settings) -> int:
    """`ava-bot telegram set-webhook`: point Telegram at this deployment (URL, secret, updates, commands)."""
    token, secret = settings.telegram_bot_token, settings.telegram_webhook_secret
    if token is None or secret is None or not settings.public_base_url:
        print("ava-bot: set TELEGRAM_BOT_TOKEN, TELEGRAM_WEBHOOK_SECRET and PUBLIC_BASE_URL first", file=sys.stderr)
        return 2
    url = f"{settings.effective_public_base_url}/webhooks/telegram"
    async with build_bot(token.get_secret_value(), settings.telegram_api_base_url) as bot:
        try:
            await set_webhook(bot, url, secret.get_secret_value())
        except (TelegramError, ValueError) as exc:
            print(f"ava-bot: Telegram refused the webhook: {exc}", file=sys.stderr)
            return 1
    print(f"Telegram webhook set to {url}")
    return 0


async def run_audit(settings: Settings, args: argparse.Namespace) -> int:
    """`ava-bot audit blocked --since ...`."""
    try:
        since = parse_since(args.since)
    except ValidationFailed as exc:
        print(f"ava-bot: {exc}", file=sys.stderr)
        return 2
    await init_db(settings.effective_database_url)
    try:
        lines = await blocked_lines(since, limit=args.limit)
    finally:
        await close_db()
    print("\n".join(lines) if lines else f"no refusals since {since:%Y-%m-%d %H:%M} UTC")
    return 0


async def run_dev(settings: Settings, *, port: int) -> None:
    """Apply migrations, then serve web + worker in this process (on 127.0.0.1 unless HOST says) until interrupted."""
    if settings.is_production:
        raise ConfigError("`ava-bot dev` is for development only; unset AVA_ENV=production or use serve/worker.")
    from ava_bot.app import create_app  # here: the worker never loads the web app (portal, jinja2)

    await run_migrations(settings.effective_database_url)
    app = await create_app(settings, run_worker=True)
    runner = web.AppRunner(app)
    await runner.setup()
    host = settings.effective_host
    site = web.TCPSite(runner, host, port)
    await site.start()
    print(f"Ava is running at http://{host}:{port}/  (health: http://{host}:{port}/health)", flush=True)
    polling = start_telegram_polling(app)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        if polling is not None:
            polling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await polling
        await runner.cleanup()


def start_telegram_polling(app: web.Application) -> asyncio.Task[None] | None:
    """In `dev` with TELEGRAM_BOT_TOKEN set: long polling (no public URL needed), handled like the webhook."""
    channel = app[SERVICES].channels.get(TELEGRAM)
    if not isinstance(channel, TelegramChannel):
        return None

    async def on_blocked(ref: ChatRef, blocked: bool) -> None:
        await set_reachable(ref, not blocked)

    deps = TelegramWebhook(
        secret=b"", inbox=lambda: app[SERVICES].inbox, bot=lambda: channel.bot, on_blocked=on_blocked
    )
    print("Telegram: polling for updates (development). Write to your bot.", flush=True)
    return asyncio.create_task(poll_updates(deps), name="telegram-polling")


if __name__ == "__main__":
    raise SystemExit(main())
