from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('ava', '0006_platform_status')]

    initial = False

    operations = [
        ops.CreateModel(
            name='LinkCode',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('ava.User', source_field='user_id', db_constraint=True, to_field='id', related_name='link_codes', on_delete=OnDelete.CASCADE)),
                ('channel', fields.CharField(description='The channel the code may be used on.', max_length=16)),
                ('code_hash', fields.CharField(unique=True, description='SHA-256 of the code (the code itself is shown once and never stored).', max_length=64)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'link_codes', 'app': 'ava', 'pk_attr': 'id', 'table_description': 'A one-time code that links a Telegram or WhatsApp chat to the web account that made it.'},
            bases=['Model'],
        ),
    ]
