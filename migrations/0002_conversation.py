from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from core.models import Mode, SetupStep
from json import dumps, loads
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('ava', '0001_initial')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Message',
            name='in_history',
            field=fields.BooleanField(default=False, description='Part of the LLM conversation history (chat turns only, never setup questions).', db_default=False),
        ),
        ops.AddField(
            model_name='Message',
            name='payload',
            field=fields.JSONField(null=True, description='Structured outbound reply (choices, link, photo) as produced by `core.messages.reply_to_payload`.', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='User',
            name='adult_confirmed_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='User',
            name='editing_avatar',
            field=fields.BooleanField(default=False, description='True while `/avatar` edits an existing avatar (current values are offered as defaults).', db_default=False),
        ),
        ops.AddField(
            model_name='User',
            name='email',
            field=fields.CharField(null=True, unique=True, max_length=254),
        ),
        ops.AddField(
            model_name='User',
            name='mode',
            field=fields.CharEnumField(default=Mode.SECRETARY, description='secretary | intimate', db_default='secretary', enum_type=Mode, max_length=16),
        ),
        ops.AddField(
            model_name='User',
            name='password_hash',
            field=fields.CharField(null=True, max_length=255),
        ),
        ops.AddField(
            model_name='User',
            name='reference_regenerations',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='User',
            name='setup_draft',
            field=fields.JSONField(default=dict, description='Answers collected so far in the current setup or edit (validated again when the avatar is created).', db_default='{}', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='User',
            name='setup_step',
            field=fields.CharEnumField(default=SetupStep.ONBOARDING, description='setup step', db_default='onboarding', enum_type=SetupStep, max_length=32),
        ),
        ops.AddField(
            model_name='User',
            name='terms_accepted_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
