from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class DropColumn(ops.RemoveField):
    """RemoveField by `ALTER TABLE ... DROP COLUMN` on every dialect.

    Tortoise's SQLite editor removes a field by rebuilding the table, which cascade-deletes the rows of child
    tables (messages, avatars, photos of every user): SQLite 3.35+ drops a plain column in place instead.
    """

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if not state_editor:
            return
        model = old_state.apps.get_model(f"{app_label}.{self.model_name}")
        sql = f'ALTER TABLE "{model._meta.db_table}" DROP COLUMN "{self.name}"'
        if state_editor.collect_sql:
            state_editor.collected_sql.append(sql)
        else:
            await state_editor.client.execute_script(sql)


class Migration(migrations.Migration):
    dependencies = [('ava', '0003_photos')]

    initial = False

    operations = [
        ops.AddField(
            model_name='ChannelIdentity',
            name='unreachable_at',
            field=fields.DatetimeField(null=True, description='Set when the platform said the user cannot be reached (blocked the bot, number gone), cleared when they write.', auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='ChannelIdentity',
            name='unreachable_reason',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AlterModelOptions(
            name='DeadLetter',
            options={'table': 'dead_letters', 'app': 'ava', 'pk_attr': 'id', 'table_description': 'Work that failed for good (a turn, a photo job), kept with its payload to inspect and replay.'},
        ),
        ops.AddField(
            model_name='Message',
            name='attempts',
            field=fields.IntField(default=0, description='Inbound: turns started for it. Outbound: failed send attempts.', db_default=0),
        ),
        ops.AddField(
            model_name='Message',
            name='error',
            field=fields.TextField(null=True, description='The last error (a failed turn, a refused send).', unique=False),
        ),
        ops.AddField(
            model_name='Message',
            name='next_attempt_at',
            field=fields.DatetimeField(null=True, description='Outbound: not before this time (a transient send failure waits, honouring retry_after).', auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Message',
            name='platform_message_id',
            field=fields.CharField(null=True, description="Outbound: the platform message id of the sent message.", max_length=128),
        ),
        ops.AddIndex(
            model_name='Message',
            index=Index(fields=['status', 'created_at']),
        ),
        ops.AddField(
            model_name='Photo',
            name='chat_channel',
            field=fields.CharField(null=True, description='The chat the request came from: the ready / failed notice goes there.', max_length=16),
        ),
        ops.AddField(
            model_name='Photo',
            name='chat_id',
            field=fields.CharField(null=True, max_length=128),
        ),
        ops.AddField(
            model_name='User',
            name='draft_age',
            field=fields.SmallIntField(null=True),
        ),
        ops.AddField(
            model_name='User',
            name='draft_appearance',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddField(
            model_name='User',
            name='draft_gender',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='User',
            name='draft_name',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='User',
            name='draft_nationality',
            field=fields.CharField(null=True, max_length=128),
        ),
        ops.AddField(
            model_name='User',
            name='draft_personality',
            field=fields.CharField(null=True, max_length=32),
        ),
        ops.AddField(
            model_name='User',
            name='question_round',
            field=fields.IntField(default=0, description='Which round of questions is open: a pressed button carries it, so a press on a passed question is refused.', db_default=0),
        ),
        ops.AddField(
            model_name='User',
            name='setup_avatar_id',
            field=fields.BigIntField(null=True, description='The avatar version being set up (its reference photo is made or reviewed).'),
        ),
        ops.AddField(
            model_name='User',
            name='setup_photo_id',
            field=fields.BigIntField(null=True, description='The reference photo shown for review (None while it is being made or after it failed).'),
        ),
        ops.AddField(
            model_name='User',
            name='version',
            field=fields.IntField(default=0, description='Optimistic concurrency: every committed state change bumps it (a turn computed on stale state re-runs).', db_default=0),
        ),
        DropColumn(model_name='User', name='setup_draft'),
    ]
