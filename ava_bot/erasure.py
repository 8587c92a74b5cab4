"""Account erasure ("delete my data"): `Eraser` implements the portal's `AccountEraser` port.

Order matters, because no network or storage call may run inside a database transaction and because a
half-finished erasure must be finishable by simply running it again:

1. No transaction open: cancel the Stripe subscription at once (an injected callable, billing's
   `cancel_immediately`), then delete the user's photo files (served copies and private originals).
2. One transaction: lock the user row (a photo being requested right now waits, then fails on the missing
   user), pseudonymise the user in the append-only audit trails (`photo_audit`, `safety_refusals`: the
   triggers allow rewriting `user_ref` alone, away from `user:<id>`), delete the user's dead letters, and
   delete the user row. Messages, identities, avatars, photos, the subscription, quota rows and link codes go
   with it (ON DELETE CASCADE), so sessions (which name the user) and photo links (which need the photo row)
   stop working.
3. After commit: delete the files of any photo a job finished between steps 1 and 2.

Every step is idempotent (cancelling a cancelled subscription, deleting a deleted file, pseudonymising rows
already pseudonymised), so a second call after a failure finishes the job; once the user row is gone the
subscription was cancelled before it, and the call only sweeps what is left.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from core.models import DeadLetter, SafetyRefusal, User, user_ref
from imaging.erasure import erase_files, photo_files
from imaging.models import Photo, PhotoAudit
from imaging.storage import PhotoStore

logger = logging.getLogger(__name__)

#: Cancels a user's paid subscription immediately (no-op when there is none); billing's `cancel_immediately`.
CancelSubscription = Callable[[int], Awaitable[None]]
#: Audit rows of an erased user name them as "erased:<random>": one pseudonym per erasure, linking nobody.
PSEUDONYM_PREFIX = "erased:"


def new_pseudonym() -> str:
    """A fresh random pseudonym for one erased user's audit rows."""
    return f"{PSEUDONYM_PREFIX}{secrets.token_hex(12)}"


class Eraser:
    """Deletes everything of a user (`portal.ports.AccountEraser`)."""

    def __init__(
        self,
        *,
        store: PhotoStore,
        originals: PhotoStore | None,
        cancel_subscription: CancelSubscription | None = None,
    ) -> None:
        self._store = store
        self._originals = originals
        self._cancel = cancel_subscription

    async def erase(self, user_id: int) -> None:
        """Cancel the subscription, delete files, pseudonymise audit rows, delete the user; safe to run again."""
        if self._cancel is not None and await User.exists(id=user_id):
            await self._cancel(user_id)
        erased = await photo_files(user_id)
        await erase_files(erased, store=self._store, originals=self._originals)
        pseudonym = new_pseudonym()
        async with in_transaction() as conn:
            await _lock_user(conn, user_id)
            late = await photo_files(user_id) - erased
            audits = await PhotoAudit.pseudonymise(user_id, pseudonym)
            refusals = await _pseudonymise_refusals(conn, user_id, pseudonym)
            letters = await _delete_dead_letters(conn, user_id)
            users = await User.filter(id=user_id).using_db(conn).delete()
        logger.info(
            "erased user %s: %d photo files, %d audit and %d refusal rows pseudonymised, %d dead letters, %d user",
            user_id,
            len(erased) + len(late),
            audits,
            refusals,
            letters,
            users,
        )
        if late:
            try:
                await erase_files(late, store=self._store, originals=self._originals)
            except Exception:
                # The rows are gone, so a second erase cannot find these files again: say which ones are left.
                logger.error("erased user %s: %d late photo files left in storage", user_id, len(late))
                raise


def _param(conn: BaseDBAsyncClient, n: int) -> str:
    return f"${n}" if conn.capabilities.dialect == "postgres" else "?"


async def _lock_user(conn: BaseDBAsyncClient, user_id: int) -> None:
    """Hold the user row until commit (PostgreSQL; SQLite serialises writers anyway)."""
    if conn.capabilities.dialect == "postgres":
        table = User._meta.db_table
        await conn.execute_query(f"SELECT id FROM {table} WHERE id = $1 FOR UPDATE", [user_id])  # noqa: S608


async def _pseudonymise_refusals(conn: BaseDBAsyncClient, user_id: int, pseudonym: str) -> int:
    """`user:<id>` -> `pseudonym` in the safety refusals (the one UPDATE their trigger allows)."""
    table = SafetyRefusal._meta.db_table
    count, _ = await conn.execute_query(
        f"UPDATE {table} SET user_ref = {_param(conn, 1)} WHERE user_ref = {_param(conn, 2)}",  # noqa: S608
        [pseudonym, user_ref(user_id)],
    )
    return int(count)


async def _delete_dead_letters(conn: BaseDBAsyncClient, user_id: int) -> int:
    """Delete dead letters of the user's turns, replies and photos (operational rows naming them)."""
    letters, photos = DeadLetter._meta.db_table, Photo._meta.db_table
    if conn.capabilities.dialect == "postgres":
        sql = (
            f"DELETE FROM {letters} WHERE payload->>'user_id' = $1 "  # noqa: S608
            f"OR payload->>'photo_id' IN (SELECT id::text FROM {photos} WHERE user_id = $2)"
        )
        params: list[object] = [str(user_id), user_id]
    else:
        sql = (
            f"DELETE FROM {letters} WHERE json_extract(payload, '$.user_id') = ? "  # noqa: S608
            f"OR json_extract(payload, '$.photo_id') IN (SELECT id FROM {photos} WHERE user_id = ?)"
        )
        params = [user_id, user_id]
    count, _ = await conn.execute_query(sql, params)
    return int(count)
