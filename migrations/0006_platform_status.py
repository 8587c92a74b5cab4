from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('ava', '0005_safety_refusals')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Message',
            name='platform_status',
            field=fields.CharField(null=True, description='Outbound: what the platform last reported (sent, delivered, read, failed), from its status callbacks.', max_length=16),
        ),
        ops.AddIndex(
            model_name='Message',
            index=Index(fields=['channel', 'platform_message_id']),
        ),
    ]
