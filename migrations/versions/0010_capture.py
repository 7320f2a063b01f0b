"""authorized payments captured at shipment: the hold's deadline, and the claim of a capture under way

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 01:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('orders', sa.Column('capture_before', sa.DateTime(timezone=True), nullable=True))
    op.add_column('orders', sa.Column('capture_claimed_until', sa.DateTime(timezone=True), nullable=True))
    # The capture job's look at authorizations close to their deadline.
    op.create_index('ix_orders_authorized_capture_before', 'orders', ['capture_before'],
                    postgresql_where=sa.text("payment_status = 'authorized'"),
                    sqlite_where=sa.text("payment_status = 'authorized'"))


def downgrade() -> None:
    op.drop_index('ix_orders_authorized_capture_before', table_name='orders')
    with op.batch_alter_table('orders') as batch:
        batch.drop_column('capture_claimed_until')
        batch.drop_column('capture_before')
