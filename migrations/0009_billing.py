from tortoise import migrations
from tortoise.migrations import operations as ops
from billing.models import QuotaKind, SubscriptionStatus
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('ava', '0008_used_tokens')]

    initial = False

    operations = [
        ops.CreateModel(
            name='BillingEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('event_id', fields.CharField(unique=True, max_length=255)),
                ('type', fields.CharField(max_length=128)),
                ('created', fields.BigIntField(default=0)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('processed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'billing_events', 'app': 'ava', 'pk_attr': 'id', 'table_description': 'A Stripe webhook event that was received: unique on its id, so a redelivery has no second effect.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Plan',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=64)),
                ('name', fields.CharField(max_length=128)),
                ('stripe_price_id', fields.CharField(null=True, description='The Stripe price id (from the environment), None when this deployment has no Stripe.', max_length=255)),
                ('interval', fields.CharField(default='month', description='Billing interval, as Stripe names it (day, week, month or year).', max_length=16)),
                ('price_label', fields.CharField(null=True, description='Shown on the subscribe page, e.g. 9.99 EUR per month (display only, Stripe charges the price).', max_length=64)),
                ('photos_per_period', fields.IntField(default=0)),
                ('regenerations_per_day', fields.IntField(default=0)),
                ('messages_per_day', fields.IntField(default=0)),
                ('automatic_tax', fields.BooleanField(default=False)),
                ('allow_promotion_codes', fields.BooleanField(default=False)),
                ('is_default', fields.BooleanField(default=False, description='The plan the subscribe page offers first.')),
                ('active', fields.BooleanField(default=True, description='False once the plan left the plans file (existing subscribers keep it).')),
                ('sort_order', fields.IntField(default=0)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'plans', 'app': 'ava', 'pk_attr': 'id', 'table_description': 'A subscription tier, synced from the plans file (never edited by hand). Amounts live in Stripe.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='QuotaCharge',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('ava.User', source_field='user_id', db_constraint=True, to_field='id', related_name='quota_charges', on_delete=OnDelete.CASCADE)),
                ('key', fields.CharField(unique=True, max_length=128)),
                ('kind', fields.CharEnumField(description='photo, regeneration or message', enum_type=QuotaKind, max_length=16)),
                ('period_key', fields.CharField(max_length=64)),
                ('refunded_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'quota_charges', 'app': 'ava', 'pk_attr': 'id', 'table_description': 'One unit consumed under a unique key (photo:<id>, regen:<message id>), refundable once.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='QuotaUsage',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('ava.User', source_field='user_id', db_constraint=True, to_field='id', related_name='quota_usage', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='photo, regeneration or message', enum_type=QuotaKind, max_length=16)),
                ('period_key', fields.CharField(description='The period the units belong to (the billing period start, or the UTC date).', max_length=64)),
                ('used', fields.IntField(default=0)),
            ],
            options={'table': 'quota_usage', 'app': 'ava', 'unique_together': (('user', 'kind', 'period_key'),), 'pk_attr': 'id', 'table_description': 'Units of a quota used by a user in one period (a billing period or a UTC day).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Subscription',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.OneToOneField('ava.User', source_field='user_id', db_constraint=True, to_field='id', related_name='subscription', on_delete=OnDelete.CASCADE)),
                ('plan', fields.ForeignKeyField('ava.Plan', source_field='plan_id', null=True, db_constraint=True, to_field='id', related_name='subscriptions', on_delete=OnDelete.SET_NULL)),
                ('status', fields.CharEnumField(description='Stripe status or granted', enum_type=SubscriptionStatus, max_length=32)),
                ('source', fields.CharField(default='stripe', description='stripe, grant or development.', max_length=16)),
                ('stripe_customer_id', fields.CharField(null=True, db_index=True, max_length=255)),
                ('stripe_subscription_id', fields.CharField(null=True, unique=True, max_length=255)),
                ('current_period_start', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('current_period_end', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('cancel_at_period_end', fields.BooleanField(default=False)),
                ('stripe_event_at', fields.BigIntField(default=0, description='The Stripe created time of the newest event applied (older events never overwrite newer state).')),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'subscriptions', 'app': 'ava', 'pk_attr': 'id', 'table_description': 'The current subscription state of a user (one row per user), taken from Stripe or from a grant.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='User',
            name='auth_epoch',
            field=fields.IntField(default=0, description='Bumped by "sign out everywhere" and erasure: sessions and photo links issued before are refused.', db_default=0),
        ),
    ]
