from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('ava', '0012_receive_inbound')]

    initial = False

    operations = [
        ops.CreateModel(
            name='OpenCheckout',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.OneToOneField('ava.User', source_field='user_id', db_constraint=True, to_field='id', related_name='open_checkout', on_delete=OnDelete.CASCADE)),
                ('session_id', fields.CharField(unique=True, max_length=255)),
                ('fingerprint', fields.CharField(description='The plan and parameters it was made with: the same checkout asked for again gets this session.', max_length=128)),
                ('url', fields.TextField(unique=False)),
                ('expires_at', fields.DatetimeField(description='When Stripe stops taking payments for it.', auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'open_checkouts', 'app': 'ava', 'pk_attr': 'id', 'table_description': "The user's newest Stripe Checkout Session that may still be paid, at most one per user."},
            bases=['Model'],
        ),
    ]
