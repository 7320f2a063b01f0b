"""notifications name their customer (the outbox no longer reads orders)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 20:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('notifications') as batch:
        batch.add_column(sa.Column('customer_id', sa.Uuid(), nullable=True))
    op.execute("UPDATE notifications SET customer_id = "
               "(SELECT orders.customer_id FROM orders WHERE orders.id = notifications.order_id)")
    with op.batch_alter_table('notifications') as batch:
        batch.alter_column('customer_id', existing_type=sa.Uuid(), nullable=False)
        batch.create_foreign_key(op.f('fk_notifications_customer_id_customers'), 'customers',
                                 ['customer_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('notifications') as batch:
        batch.drop_constraint('fk_notifications_customer_id_customers', type_='foreignkey')
        batch.drop_column('customer_id')
