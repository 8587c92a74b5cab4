from tortoise import migrations
from tortoise.migrations import operations as ops
from core.models import Direction, MessageStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index
from tortoise.migrations.constraints import CheckConstraint

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'users', 'app': 'ava', 'pk_attr': 'id', 'table_description': 'A person using Ava on one or more channels.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Avatar',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('ava.User', source_field='user_id', db_constraint=True, to_field='id', related_name='avatars', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=64)),
                ('gender', fields.CharField(max_length=64)),
                ('age', fields.SmallIntField()),
                ('nationality', fields.CharField(max_length=128)),
                ('appearance', fields.TextField(unique=False)),
                ('personality', fields.CharField(max_length=32)),
                ('reference_photo_id', fields.BigIntField(null=True, description='The approved reference photo anchoring every later photo (photos table: imaging issue).')),
                ('approved_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'avatars', 'app': 'ava', 'pk_attr': 'id', 'table_description': "One version of a user's character. Editing creates a new version with a new reference photo."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ChannelIdentity',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('ava.User', source_field='user_id', db_constraint=True, to_field='id', related_name='identities', on_delete=OnDelete.CASCADE)),
                ('channel', fields.CharField(max_length=16)),
                ('external_user_id', fields.CharField(max_length=128)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'channel_identities', 'app': 'ava', 'unique_together': (('channel', 'external_user_id'),), 'pk_attr': 'id', 'table_description': 'Links a platform account (Telegram user, WhatsApp number, web login) to a `User`.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Message',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('ava.User', source_field='user_id', db_constraint=True, to_field='id', related_name='messages', on_delete=OnDelete.CASCADE)),
                ('direction', fields.CharEnumField(description='in | out', enum_type=Direction, max_length=3)),
                ('channel', fields.CharField(max_length=16)),
                ('chat_id', fields.CharField(max_length=128)),
                ('external_message_id', fields.CharField(null=True, max_length=128)),
                ('text', fields.TextField(null=True, unique=False)),
                ('choice', fields.CharField(null=True, max_length=128)),
                ('status', fields.CharEnumField(default=MessageStatus.PENDING, description='pending | done | failed | sent', enum_type=MessageStatus, max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('processed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'messages', 'app': 'ava', 'unique_together': (('channel', 'external_message_id'),), 'indexes': [Index(fields=['user_id', 'status', 'id'])], 'pk_attr': 'id', 'table_description': 'A chat message in either direction. Inbound rows are unique per (channel, external id).'},
            bases=['Model'],
        ),
        # Tortoise never creates Meta.constraints by itself (upstream #2272): add them explicitly, with the
        # table's first migration so SQLite's table rebuild happens while the table is still empty.
        ops.AddConstraint(model_name='Avatar', constraint=CheckConstraint(check='age >= 20', name='avatars_age_adult')),
        ops.AddConstraint(
            model_name='Avatar',
            constraint=CheckConstraint(check='length(appearance) <= 2000', name='avatars_appearance_length'),
        ),
    ]
