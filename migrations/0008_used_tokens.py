from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('ava', '0007_link_codes')]

    initial = False

    operations = [
        ops.CreateModel(
            name='UsedToken',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('used_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'used_tokens', 'app': 'ava', 'pk_attr': 'id', 'table_description': 'A one-time token (a magic sign-in link) that was used: its SHA-256, so it is never accepted again.'},
            bases=['Model'],
        ),
    ]
