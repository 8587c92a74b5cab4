"""The safety audit: refusals are append-only (model and database) and `ava-bot audit blocked` lists them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from tortoise import connections

from ava_bot.audit import blocked_lines, parse_since
from core.errors import AuditImmutable, ValidationFailed
from core.models import SafetyRefusal
from core.safety import Refusal, record_refusal


async def test_refusals_are_append_only_in_the_model_and_the_database(db: str) -> None:
    """Neither the model nor raw SQL may change or delete a refusal; pseudonymising user_ref alone is allowed."""
    await record_refusal(7, Refusal("gender", "rules", "minor-term", "minor-term: 'teen'", "teen girl"), channel="web")
    row = await SafetyRefusal.get()
    row.code = "edited"
    with pytest.raises(AuditImmutable):
        await row.save()
    with pytest.raises(AuditImmutable):
        await row.delete()
    conn = connections.get("default")
    with pytest.raises(Exception, match="append-only"):
        await conn.execute_query("UPDATE safety_refusals SET code = 'x'")
    with pytest.raises(Exception, match="append-only"):
        await conn.execute_query("DELETE FROM safety_refusals")
    await conn.execute_query("UPDATE safety_refusals SET user_ref = 'erased:abc' WHERE user_ref = 'user:7'")
    assert (await SafetyRefusal.get()).user_ref == "erased:abc"


def test_since_accepts_dates_and_spans_and_refuses_nonsense() -> None:
    """--since takes 2026-11-01, a date-time, or 24h / 7d; anything else is a clear error."""
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert parse_since("24h", now=now) == now - timedelta(hours=24)
    assert parse_since("7d", now=now) == now - timedelta(days=7)
    assert parse_since("2026-11-01", now=now) == datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(ValidationFailed):
        parse_since("last tuesday", now=now)


async def test_blocked_lists_recent_refusals_with_field_layer_and_code(db: str) -> None:
    """Each line names when, who, where, the field, the layer, the code and the text."""
    await record_refusal(3, Refusal("scene", "openai-moderation", "sexual/minors", None, "in bed"), channel="telegram")
    (line,) = await blocked_lines(datetime.now(UTC) - timedelta(hours=1))
    assert "\tuser:3\ttelegram\tscene\topenai-moderation\tsexual/minors\t" in line and "'in bed'" in line
    assert await blocked_lines(datetime.now(UTC) + timedelta(hours=1)) == []


async def test_cli_audit_blocked(db: str) -> None:
    """`ava-bot audit blocked --since 1d` prints the refusals."""
    await record_refusal(5, Refusal("name", "rules", "minor-term", "minor-term: 'lolita'", "Lolita"), channel="web")
    env = {**os.environ, "DATABASE_URL": db, "AVA_ENV": "development"}
    done = subprocess.run(
        [sys.executable, "-m", "ava_bot.cli", "audit", "blocked", "--since", "1d"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "\tuser:5\tweb\tname\trules\tminor-term\t" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "ava_bot.cli", "audit", "blocked", "--since", "soon"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--since" in bad.stderr
