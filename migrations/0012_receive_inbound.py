import importlib

from tortoise import migrations
from tortoise.migrations import operations as ops

# PostgreSQL: the webhooks of known chats are stored in ONE round trip (`core.inbox.store_batch`): the look-up and
# the store of migration 0010 in one function call, `ava_receive_inbound`.
#
# `ava_arrival_lock`: a user's arrival lock key, computed in SQL (the look-up finds the users, so the keys cannot
# come from the caller any more): the user id in a namespace of its own, above every key 0010's callers used (a
# CRC-32, below 2**32). `core.inbox.arrival_lock_key` computes the same.
#
# `ava_store_inbound` (0010) now also takes these keys, in the same ascending order: during a rolling deploy a
# replica of the previous release (which passes CRC-32 keys) and one of this release exclude each other.
#
# `ava_receive_inbound`: per message of the batch, in one statement, the look-up (its chat's user, or the one
# given; whether it is stored already), then the arrival locks of the users whose messages it inserts (ascending),
# then, in a second statement (a new snapshot: it sees every message of these users committed before the locks were
# granted) the insert, in arrival order, each admitted or limited by its user's window as in 0010. It inserts a
# message only when nothing else needs doing first: its user is known, it is not stored yet, its chat is neither
# marked unreachable nor holding replies, it is the first of its (channel, id) in the batch, and no earlier message
# of its user in the batch is left out for one of those reasons (their order must hold). Returns every message in
# batch order with its look-up, whether it was to be inserted (`attempted`), and its new row; the caller stores the
# messages left out the slower way (first contacts, unreachable chats, held replies, a redelivery that won a race).
_FUNCTIONS = """
CREATE OR REPLACE FUNCTION ava_arrival_lock(user_id bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$ SELECT 4708021928718237696 + user_id $$;

CREATE OR REPLACE FUNCTION ava_store_inbound(
  user_ids bigint[], channels text[], chat_ids text[], external_ids text[], texts text[], choices text[],
  lock_keys bigint[], per_window integer, window_start timestamptz, stored_at timestamptz
) RETURNS TABLE (stored_id bigint, stored_channel text, stored_external_id text, stored_status text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(k.key)
  FROM (
    SELECT DISTINCT u.key FROM (
      SELECT unnest(lock_keys) AS key UNION ALL SELECT ava_arrival_lock(unnest(user_ids))
    ) AS u ORDER BY u.key
  ) AS k;
  RETURN QUERY
  INSERT INTO messages AS m (user_id, direction, channel, chat_id, external_message_id, text, choice, status,
    processed_at, created_at)
  SELECT s.user_id, 'in', s.channel, s.chat_id, s.external_id, s.text, s.choice, s.status,
    CASE WHEN s.status = 'limited' THEN stored_at END, stored_at
  FROM (
    SELECT b.*,
      CASE WHEN per_window IS NULL
        OR r.recent + row_number() OVER (PARTITION BY b.user_id ORDER BY b.ord) <= per_window
      THEN 'pending' ELSE 'limited' END AS status
    FROM unnest(user_ids, channels, chat_ids, external_ids, texts, choices)
      WITH ORDINALITY AS b(user_id, channel, chat_id, external_id, text, choice, ord)
    CROSS JOIN LATERAL (
      SELECT count(*) AS recent FROM (
        SELECT 1 FROM messages w
        WHERE per_window IS NOT NULL AND w.user_id = b.user_id AND w.direction = 'in' AND w.status <> 'limited'
          AND w.created_at > window_start
        LIMIT per_window
      ) AS x
    ) AS r
  ) AS s
  ORDER BY s.ord
  ON CONFLICT (channel, external_message_id) DO NOTHING
  RETURNING m.id, m.channel::text, m.external_message_id::text, m.status::text;
END
$$;

CREATE OR REPLACE FUNCTION ava_receive_inbound(
  given_users bigint[], channels text[], chat_ids text[], external_ids text[], texts text[], choices text[],
  per_window integer, window_start timestamptz, stored_at timestamptz
) RETURNS TABLE (
  ord bigint, user_id bigint, message_id bigint, message_status text, attempted boolean, stored_id bigint,
  stored_status text
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  users bigint[];
  found_ids bigint[];
  found_statuses text[];
  admits boolean[];
BEGIN
  SELECT array_agg(l.user_id ORDER BY l.ord), array_agg(l.message_id ORDER BY l.ord),
    array_agg(l.message_status ORDER BY l.ord), array_agg(l.admit ORDER BY l.ord)
  INTO users, found_ids, found_statuses, admits
  FROM (
    SELECT r.*, r.ready AND NOT bool_or(r.blocked) OVER (PARTITION BY r.user_id ORDER BY r.ord) AS admit
    FROM (
      SELECT f.*,
        f.user_id IS NOT NULL AND f.message_id IS NULL AND f.first_of_id AND NOT f.unreachable AND NOT f.held
          AS ready,
        f.user_id IS NOT NULL AND f.message_id IS NULL AND f.first_of_id AND (f.unreachable OR f.held) AS blocked
      FROM (
        SELECT b.ord, coalesce(b.given, ci.user_id) AS user_id, m.id AS message_id,
          m.status::text AS message_status, coalesce(ci.unreachable_at IS NOT NULL, false) AS unreachable,
          m.id IS NULL AND EXISTS (
            SELECT 1 FROM messages h
            WHERE h.status = 'held' AND h.direction = 'out' AND h.channel = b.channel AND h.chat_id = b.chat_id
          ) AS held,
          row_number() OVER (PARTITION BY b.channel, b.external_id ORDER BY b.ord) = 1 AS first_of_id
        FROM unnest(given_users, channels, chat_ids, external_ids)
          WITH ORDINALITY AS b(given, channel, chat_id, external_id, ord)
        LEFT JOIN channel_identities ci ON ci.channel = b.channel AND ci.external_user_id = b.chat_id
        LEFT JOIN messages m ON m.channel = b.channel AND m.external_message_id = b.external_id
      ) AS f
    ) AS r
  ) AS l;

  PERFORM pg_advisory_xact_lock(k.key)
  FROM (
    SELECT DISTINCT ava_arrival_lock(u.user_id) AS key
    FROM unnest(users, admits) AS u(user_id, admit) WHERE u.admit ORDER BY key
  ) AS k;

  RETURN QUERY
  WITH l AS (
    SELECT * FROM unnest(users, found_ids, found_statuses, admits, channels, chat_ids, external_ids, texts, choices)
      WITH ORDINALITY AS l(user_id, message_id, message_status, admit, channel, chat_id, external_id, text, choice, ord)
  ), inserted AS (
    INSERT INTO messages AS m (user_id, direction, channel, chat_id, external_message_id, text, choice, status,
      processed_at, created_at)
    SELECT s.user_id, 'in', s.channel, s.chat_id, s.external_id, s.text, s.choice, s.status,
      CASE WHEN s.status = 'limited' THEN stored_at END, stored_at
    FROM (
      SELECT l.*,
        CASE WHEN per_window IS NULL
          OR r.recent + row_number() OVER (PARTITION BY l.user_id ORDER BY l.ord) <= per_window
        THEN 'pending' ELSE 'limited' END AS status
      FROM l
      CROSS JOIN LATERAL (
        SELECT count(*) AS recent FROM (
          SELECT 1 FROM messages w
          WHERE per_window IS NOT NULL AND w.user_id = l.user_id AND w.direction = 'in' AND w.status <> 'limited'
            AND w.created_at > window_start
          LIMIT per_window
        ) AS x
      ) AS r
      WHERE l.admit
    ) AS s
    ORDER BY s.ord
    ON CONFLICT (channel, external_message_id) DO NOTHING
    RETURNING m.id, m.channel, m.external_message_id, m.status
  )
  SELECT l.ord, l.user_id, l.message_id, l.message_status, l.admit, i.id, i.status::text
  FROM l LEFT JOIN inserted i ON l.admit AND i.channel = l.channel AND i.external_message_id = l.external_id
  ORDER BY l.ord;
END
$$;
"""
_DROP_FUNCTIONS = (
    "DROP FUNCTION IF EXISTS ava_receive_inbound("
    "bigint[], text[], text[], text[], text[], text[], integer, timestamptz, timestamptz); "
    "DROP FUNCTION IF EXISTS ava_arrival_lock(bigint)"
)


async def _run(schema_editor, sql: str) -> None:
    if schema_editor.collect_sql:
        schema_editor.collected_sql.append(sql)
    else:
        await schema_editor.client.execute_script(sql)


async def add_functions(apps, schema_editor) -> None:
    if schema_editor.client.capabilities.dialect == "postgres":  # SQLite (`dev`) stores row by row
        await _run(schema_editor, _FUNCTIONS)


async def drop_functions(apps, schema_editor) -> None:
    if schema_editor.client.capabilities.dialect == "postgres":
        previous = importlib.import_module("migrations.0010_inbound_window")
        await _run(schema_editor, previous._FUNCTION)  # ava_store_inbound as 0010 made it
        await _run(schema_editor, _DROP_FUNCTIONS)


class Migration(migrations.Migration):
    dependencies = [('ava', '0011_one_statement_turns')]

    initial = False

    operations = [
        ops.RunPython(add_functions, drop_functions),
    ]
