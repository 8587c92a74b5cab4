from tortoise import migrations
from tortoise.migrations import operations as ops

# The inbound rate limit counts a user's admitted messages of the last window when their messages are inserted
# (core.inbox): this partial index keeps that count to the window's few rows, however long the user's history and
# however many of their messages were limited. The same SQL on PostgreSQL and SQLite.
_INDEX = (
    "CREATE INDEX IF NOT EXISTS messages_inbound_window ON messages (user_id, created_at) "
    "WHERE direction = 'in' AND status <> 'limited'"
)
_DROP_INDEX = "DROP INDEX IF EXISTS messages_inbound_window"

# PostgreSQL: a batch of new inbound messages stored in one round trip (`core.inbox.store_batch`), in the
# statement's own transaction. First the users' arrival locks, in ascending key order (two batches sharing users
# never deadlock), before any id is drawn: a user's ids are committed in id order, so a drain reading their oldest
# pending row never skips one that commits later. Then, in a second statement (a volatile function's statements
# each take a new snapshot, so this one sees every message of these users committed before the locks were
# granted), the insert: in arrival order (`ord`), each message admitted while its user has fewer than
# `per_window` admitted messages since `window_start`, counting this batch's earlier ones (NULL `per_window`: no
# limit). ON CONFLICT: a concurrent redelivery that won the race leaves its row out of the result.
_FUNCTION = """
CREATE OR REPLACE FUNCTION ava_store_inbound(
  user_ids bigint[], channels text[], chat_ids text[], external_ids text[], texts text[], choices text[],
  lock_keys bigint[], per_window integer, window_start timestamptz, stored_at timestamptz
) RETURNS TABLE (stored_id bigint, stored_channel text, stored_external_id text, stored_status text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(k.key)
  FROM (SELECT DISTINCT u.key FROM unnest(lock_keys) AS u(key) ORDER BY u.key) AS k;
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
$$
"""
_DROP_FUNCTION = (
    "DROP FUNCTION IF EXISTS ava_store_inbound("
    "bigint[], text[], text[], text[], text[], text[], bigint[], integer, timestamptz, timestamptz)"
)


async def _run(schema_editor, sql: str) -> None:
    if schema_editor.collect_sql:
        schema_editor.collected_sql.append(sql)
    else:
        await schema_editor.client.execute_script(sql)


async def add_store_function(apps, schema_editor) -> None:
    if schema_editor.client.capabilities.dialect == "postgres":  # SQLite (`dev`) inserts row by row
        await _run(schema_editor, _FUNCTION)


async def drop_store_function(apps, schema_editor) -> None:
    if schema_editor.client.capabilities.dialect == "postgres":
        await _run(schema_editor, _DROP_FUNCTION)


class Migration(migrations.Migration):
    dependencies = [('ava', '0009_billing')]

    initial = False

    operations = [
        ops.RunSQL(_INDEX, reverse_sql=_DROP_INDEX),
        ops.RunPython(add_store_function, drop_store_function),
    ]
