from tortoise import migrations
from tortoise.migrations import operations as ops

# The inbound rate limit counts a user's admitted messages of the last window inside the insert's transaction
# (core.inbox): this partial index keeps that count to the window's few rows, however long the user's history and
# however many of their messages were limited. The same SQL on PostgreSQL and SQLite.
_FORWARD = (
    "CREATE INDEX IF NOT EXISTS messages_inbound_window ON messages (user_id, created_at) "
    "WHERE direction = 'in' AND status <> 'limited'"
)
_BACKWARD = "DROP INDEX IF EXISTS messages_inbound_window"


class Migration(migrations.Migration):
    dependencies = [('ava', '0009_billing')]

    initial = False

    operations = [
        ops.RunSQL(_FORWARD, reverse_sql=_BACKWARD),
    ]
