"""`move_photo`: a photo's conditional state change and its audit row, as one statement on PostgreSQL.

The pipeline's transitions are on the photo job's critical path: the GENERATING one is committed before the
provider is called, the READY one before the user is notified. Through the ORM each is an UPDATE, then an INSERT
of the audit row (a round trip and a model instance each), in a transaction (BEGIN and COMMIT round trips). On
PostgreSQL a data-modifying CTE does both in one statement, so the audit row exists exactly when the UPDATE moved
the photo, with no explicit transaction needed when nothing else is written with it. Other databases (SQLite in
`ava-bot dev`) take the ORM's two statements, inside a transaction the caller opens.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from tortoise import connections

from core.models import user_ref
from imaging.models import Photo, PhotoAudit, PhotoStatus

#: The statuses a photo may still leave (`queued`, `generating`); the terminal ones never change again.
ACTIVE = (PhotoStatus.QUEUED, PhotoStatus.GENERATING)


def single_statement() -> bool:
    """True when `move_photo` is atomic on its own (PostgreSQL), so needs no transaction when it is all there is."""
    return bool(connections.get(Photo._meta.default_connection).capabilities.dialect == "postgres")


async def move_photo(
    photo: Photo, status: PhotoStatus, event: str, *, updates: dict[str, Any], audit: dict[str, Any]
) -> bool:
    """Move `photo` to `status` if it is still active, with `updates`, and write its audit row (`audit` columns;
    keys that are not audit columns are ignored, as the ORM ignores them); False when it was not active."""
    now = datetime.now(UTC)
    row = {k: v for k, v in audit.items() if k in PhotoAudit._meta.fields_db_projection}
    row |= {"user_ref": user_ref(photo.user_id), "kind": photo.kind.value, "event": event, "status": status.value}
    row["scene"] = photo.scene
    changes = {"status": status, "updated_at": now, **updates}
    db = connections.get(Photo._meta.default_connection)  # the open transaction's connection, if any
    if db.capabilities.dialect != "postgres":
        if not await Photo.filter(id=photo.id, status__in=ACTIVE).update(**changes):
            return False
        await PhotoAudit.create(photo_id=photo.id, **row)
        return True
    row["created_at"] = now
    sql = _move_sql(tuple(changes), tuple(row))
    values = [_db(v) for v in (*changes.values(), photo.id, *row.values())]
    count, _ = await db.execute_query(sql, values)
    return bool(count)


@functools.cache
def _move_sql(photo_fields: tuple[str, ...], audit_fields: tuple[str, ...]) -> str:
    """UPDATE ... RETURNING feeding INSERT ... SELECT: the audit row is inserted only when the photo moved."""
    photos, audits = Photo._meta, PhotoAudit._meta
    sets = ", ".join(f'"{photos.fields_db_projection[f]}" = ${i}' for i, f in enumerate(photo_fields, 1))
    id_param = len(photo_fields) + 1
    active = ", ".join(f"'{s.value}'" for s in ACTIVE)
    columns = ", ".join(f'"{audits.fields_db_projection[f]}"' for f in audit_fields)
    params = ", ".join(f"${i}" for i in range(id_param + 1, id_param + 1 + len(audit_fields)))
    return (
        f'WITH moved AS (UPDATE "{photos.db_table}" SET {sets} '  # noqa: S608 (names from the models, values bound)
        f'WHERE "id" = ${id_param} AND "status" IN ({active}) RETURNING "id") '
        f'INSERT INTO "{audits.db_table}" ("photo_id", {columns}) SELECT moved."id", {params} FROM moved RETURNING "id"'
    )


def _db(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value
