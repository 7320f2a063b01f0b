"""automatic refunds Stripe refused: how many in a row, and when the next may be tried

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('orders', sa.Column('refund_failures', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('orders', sa.Column('refund_retry_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('orders') as batch:
        batch.alter_column('refund_failures', existing_type=sa.Integer(), server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('orders') as batch:
        batch.drop_column('refund_retry_at')
        batch.drop_column('refund_failures')
