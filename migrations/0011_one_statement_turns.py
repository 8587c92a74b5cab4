from tortoise import migrations
from tortoise.migrations import operations as ops

# PostgreSQL only: a chat turn is committed in ONE statement (`core.turns`: no BEGIN / COMMIT round trips), its
# quota unit included. SQLite (`dev`) and every turn the one statement cannot express keep the transaction.
#
# `ava_take_unit`: the message quota's charge (`billing.entitlements`), as the turn statement and `charge_checked`
# both run it: the charge row (its unique key refuses a second one), then one more unit used in the period unless
# `unit_limit` is reached (an upsert: the period's first unit creates its counter). Answers 'taken', 'refused'
# (charged, no unit left: the caller rolls back) or 'charged before' (the key has a row already: nothing written).
#
# `ava_require`: raises SQLSTATE AVA01 when `ok` is not true, so one statement whose data-modifying parts did not
# all take place rolls back as a whole (the turn is then committed the slow way, which finds out why).
_FUNCTIONS = """
CREATE OR REPLACE FUNCTION ava_take_unit(
  charge_user bigint, charge_key text, charge_kind text, charge_period text, charged_at timestamptz,
  unit_limit integer
) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  INSERT INTO quota_charges (user_id, key, kind, period_key, created_at)
  VALUES (charge_user, charge_key, charge_kind, charge_period, charged_at)
  ON CONFLICT (key) DO NOTHING;
  IF NOT FOUND THEN
    RETURN 'charged before';
  END IF;
  INSERT INTO quota_usage AS u (user_id, kind, period_key, used) VALUES (charge_user, charge_kind, charge_period, 1)
  ON CONFLICT (user_id, kind, period_key) DO UPDATE SET used = u.used + 1 WHERE u.used < unit_limit;
  IF FOUND THEN
    RETURN 'taken';
  END IF;
  RETURN 'refused';
END
$$;

CREATE OR REPLACE FUNCTION ava_require(ok boolean, what text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF ok IS NOT TRUE THEN
    RAISE EXCEPTION USING ERRCODE = 'AVA01', MESSAGE = what;
  END IF;
  RETURN true;
END
$$;
"""
_DROP_FUNCTIONS = (
    "DROP FUNCTION IF EXISTS ava_take_unit(bigint, text, text, text, timestamptz, integer); "
    "DROP FUNCTION IF EXISTS ava_require(boolean, text)"
)


async def _run(schema_editor, sql: str) -> None:
    if schema_editor.collect_sql:
        schema_editor.collected_sql.append(sql)
    else:
        await schema_editor.client.execute_script(sql)


async def add_functions(apps, schema_editor) -> None:
    if schema_editor.client.capabilities.dialect == "postgres":
        await _run(schema_editor, _FUNCTIONS)


async def drop_functions(apps, schema_editor) -> None:
    if schema_editor.client.capabilities.dialect == "postgres":
        await _run(schema_editor, _DROP_FUNCTIONS)


class Migration(migrations.Migration):
    dependencies = [('ava', '0010_inbound_window')]

    initial = False

    operations = [
        ops.RunPython(add_functions, drop_functions),
    ]
