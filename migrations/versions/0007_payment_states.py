"""payment states a client can see: the method type, the pending step, the last decline, and when a
payment the provider was processing failed (the order's time to pay counts from then)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('orders', sa.Column('payment_method_type', sa.String(length=64), nullable=True))
    op.add_column('orders', sa.Column('payment_next_action',
                                      sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
                                      nullable=True))
    op.add_column('orders', sa.Column('payment_error', sa.Text(), nullable=True))
    op.add_column('orders', sa.Column('payable_since', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('orders', 'payable_since')
    op.drop_column('orders', 'payment_error')
    op.drop_column('orders', 'payment_next_action')
    op.drop_column('orders', 'payment_method_type')
