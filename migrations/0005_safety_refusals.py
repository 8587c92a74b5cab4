from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

# safety_refusals is append-only like photo_audit (0003): the model refuses updates and deletes, and these
# triggers make the database refuse them too. One UPDATE stays allowed: rewriting `user_ref` alone away from
# "user:<id>" (erasure pseudonymises the trail).
_PG_FORWARD = """
CREATE OR REPLACE FUNCTION safety_refusals_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND (to_jsonb(NEW) - 'user_ref') = (to_jsonb(OLD) - 'user_ref')
       AND NEW.user_ref NOT LIKE 'user:%' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'safety_refusals is append-only: % refused', TG_OP;
END
$$;
CREATE TRIGGER safety_refusals_append_only BEFORE UPDATE OR DELETE ON safety_refusals
    FOR EACH ROW EXECUTE FUNCTION safety_refusals_append_only();
"""
_PG_BACKWARD = """
DROP TRIGGER IF EXISTS safety_refusals_append_only ON safety_refusals;
DROP FUNCTION IF EXISTS safety_refusals_append_only();
"""
_COLUMNS = ("id", "channel", "field", "layer", "code", "reason", "text", "photo_id", "created_at")
_SQLITE_FORWARD = f"""
CREATE TRIGGER safety_refusals_no_delete BEFORE DELETE ON safety_refusals
BEGIN SELECT RAISE(ABORT, 'safety_refusals is append-only: DELETE refused'); END;
CREATE TRIGGER safety_refusals_no_update BEFORE UPDATE ON safety_refusals
WHEN NEW.user_ref LIKE 'user:%' OR {" OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _COLUMNS)}
BEGIN SELECT RAISE(ABORT, 'safety_refusals is append-only: UPDATE refused'); END;
"""
_SQLITE_BACKWARD = """
DROP TRIGGER IF EXISTS safety_refusals_no_update;
DROP TRIGGER IF EXISTS safety_refusals_no_delete;
"""


async def _run(schema_editor, sql: str) -> None:
    if schema_editor.collect_sql:
        schema_editor.collected_sql.append(sql)
    else:
        await schema_editor.client.execute_script(sql)


async def add_triggers(apps, schema_editor) -> None:
    dialect = schema_editor.client.capabilities.dialect
    await _run(schema_editor, _PG_FORWARD if dialect == "postgres" else _SQLITE_FORWARD)


async def drop_triggers(apps, schema_editor) -> None:
    dialect = schema_editor.client.capabilities.dialect
    await _run(schema_editor, _PG_BACKWARD if dialect == "postgres" else _SQLITE_BACKWARD)


class Migration(migrations.Migration):
    dependencies = [('ava', '0004_delivery_turns')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SafetyRefusal',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user_ref', fields.CharField(db_index=True, description='user:<id> until erasure pseudonymises it.', max_length=128)),
                ('channel', fields.CharField(null=True, max_length=16)),
                ('field', fields.CharField(description='gender, nationality, appearance, name, personality, age, scene or prompt.', max_length=32)),
                ('layer', fields.CharField(description='rules, or the moderation layer that refused.', max_length=64)),
                ('code', fields.CharField(description='The reason code (a rule name or a moderation category).', max_length=64)),
                ('reason', fields.TextField(null=True, unique=False)),
                ('text', fields.TextField(null=True, description='The refused text (bounded), for an operator to review.', unique=False)),
                ('photo_id', fields.BigIntField(null=True)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'safety_refusals', 'app': 'ava', 'pk_attr': 'id', 'table_description': 'Append-only record of every text a safety layer refused: an avatar field, a photo scene or a prompt.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Photo',
            name='original_key',
            field=fields.CharField(null=True, description='References only: the unwatermarked provider original (private store, never served) later photos use.', max_length=200),
        ),
        ops.AddField(
            model_name='User',
            name='setup_refusals',
            field=fields.IntField(default=0, description='Refused answers to the current setup question (after 3 it offers choices only: the flow never loops).', db_default=0),
        ),
        ops.RunPython(add_triggers, drop_triggers),
    ]
