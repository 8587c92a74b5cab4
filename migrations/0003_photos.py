from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from imaging.models import PhotoKindChoice, PhotoStatus
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

# PhotoAudit is append-only. The model refuses updates and deletes; these triggers make the database refuse
# them too, whoever connects. One UPDATE stays allowed: rewriting `user_ref` alone away from "user:<id>"
# (erasure pseudonymises the trail). TRUNCATE is not blocked (test harness, disaster recovery).
# `RunSQL` has no dialect switch in Tortoise 1.1, hence `RunPython` choosing the SQL by the connection's dialect.
# SQLite's schema editor splits SQL on ';', which would cut a trigger body apart: run it as one script instead.
_PG_FORWARD = """
CREATE OR REPLACE FUNCTION photo_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND (to_jsonb(NEW) - 'user_ref') = (to_jsonb(OLD) - 'user_ref')
       AND NEW.user_ref NOT LIKE 'user:%' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'photo_audit is append-only: % refused', TG_OP;
END
$$;
CREATE TRIGGER photo_audit_append_only BEFORE UPDATE OR DELETE ON photo_audit
    FOR EACH ROW EXECUTE FUNCTION photo_audit_append_only();
"""
_PG_BACKWARD = """
DROP TRIGGER IF EXISTS photo_audit_append_only ON photo_audit;
DROP FUNCTION IF EXISTS photo_audit_append_only();
"""
_AUDIT_COLUMNS = (
    "id", "photo_id", "channel", "kind", "event", "status", "scene", "prompt", "safety_allowed", "safety_reason",
    "provider", "model", "seed", "provider_job_id", "storage_key", "error", "created_at",
)
_SQLITE_FORWARD = f"""
CREATE TRIGGER photo_audit_no_delete BEFORE DELETE ON photo_audit
BEGIN SELECT RAISE(ABORT, 'photo_audit is append-only: DELETE refused'); END;
CREATE TRIGGER photo_audit_no_update BEFORE UPDATE ON photo_audit
WHEN NEW.user_ref LIKE 'user:%' OR {" OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _AUDIT_COLUMNS)}
BEGIN SELECT RAISE(ABORT, 'photo_audit is append-only: UPDATE refused'); END;
"""
_SQLITE_BACKWARD = """
DROP TRIGGER IF EXISTS photo_audit_no_update;
DROP TRIGGER IF EXISTS photo_audit_no_delete;
"""


async def _run(schema_editor, sql: str) -> None:
    if schema_editor.collect_sql:
        schema_editor.collected_sql.append(sql)
    else:
        await schema_editor.client.execute_script(sql)


async def add_audit_triggers(apps, schema_editor) -> None:
    dialect = schema_editor.client.capabilities.dialect
    if dialect == "postgres":
        await _run(schema_editor, _PG_FORWARD)
    elif dialect == "sqlite":
        await _run(schema_editor, _SQLITE_FORWARD)


async def drop_audit_triggers(apps, schema_editor) -> None:
    dialect = schema_editor.client.capabilities.dialect
    if dialect == "postgres":
        await _run(schema_editor, _PG_BACKWARD)
    elif dialect == "sqlite":
        await _run(schema_editor, _SQLITE_BACKWARD)

class Migration(migrations.Migration):
    dependencies = [('ava', '0002_conversation')]

    initial = False

    operations = [
        ops.CreateModel(
            name='DeadLetter',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('job', fields.CharField(max_length=64)),
                ('payload', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('error', fields.TextField(unique=False)),
                ('attempts', fields.IntField(default=0, db_default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('replayed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'dead_letters', 'app': 'ava', 'pk_attr': 'id', 'table_description': 'A background job that failed for good, kept with its payload so it can be inspected and replayed.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Photo',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('ava.User', source_field='user_id', db_constraint=True, to_field='id', related_name='photos', on_delete=OnDelete.CASCADE)),
                ('avatar', fields.ForeignKeyField('ava.Avatar', source_field='avatar_id', db_constraint=True, to_field='id', related_name='photos', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='reference | photo', enum_type=PhotoKindChoice, max_length=16)),
                ('status', fields.CharEnumField(default=PhotoStatus.QUEUED, description='queued | generating | ready | failed | blocked', db_default='queued', enum_type=PhotoStatus, max_length=16)),
                ('scene', fields.TextField(null=True, unique=False)),
                ('prompt', fields.TextField(null=True, unique=False)),
                ('source_key', fields.CharField(unique=True, description='Idempotency key from the requester (e.g. the tool call id): one photo per key.', max_length=200)),
                ('provider', fields.CharField(null=True, max_length=64)),
                ('model', fields.CharField(null=True, max_length=200)),
                ('seed', fields.BigIntField(null=True)),
                ('provider_job_id', fields.CharField(null=True, max_length=200)),
                ('storage_key', fields.CharField(null=True, description='Key of the signed JPEG in the photo store (set exactly when the status is ready).', max_length=200)),
                ('attempts', fields.IntField(default=0, db_default=0)),
                ('error', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('ready_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'photos', 'app': 'ava', 'indexes': [Index(fields=['status', 'updated_at']), Index(fields=['user_id', 'id'])], 'pk_attr': 'id', 'table_description': 'A generated image of an avatar: a reference portrait or a photo in a scene.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PhotoAudit',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('photo_id', fields.BigIntField(db_index=True)),
                ('user_ref', fields.CharField(db_index=True, description='user:<id> until erasure pseudonymises it.', max_length=128)),
                ('channel', fields.CharField(null=True, max_length=16)),
                ('kind', fields.CharField(max_length=16)),
                ('event', fields.CharField(max_length=32)),
                ('status', fields.CharField(max_length=16)),
                ('scene', fields.TextField(null=True, unique=False)),
                ('prompt', fields.TextField(null=True, unique=False)),
                ('safety_allowed', fields.BooleanField(null=True)),
                ('safety_reason', fields.TextField(null=True, unique=False)),
                ('provider', fields.CharField(null=True, max_length=64)),
                ('model', fields.CharField(null=True, max_length=200)),
                ('seed', fields.BigIntField(null=True)),
                ('provider_job_id', fields.CharField(null=True, max_length=200)),
                ('storage_key', fields.CharField(null=True, max_length=200)),
                ('error', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'photo_audit', 'app': 'ava', 'pk_attr': 'id', 'table_description': 'Append-only record of every photo request and state change (rows are never updated or deleted).'},
            bases=['Model'],
        ),
        ops.RunPython(add_audit_triggers, drop_audit_triggers),
    ]
