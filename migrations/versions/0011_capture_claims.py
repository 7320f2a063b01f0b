"""a capture's claim names its owner; the generation of a capture's idempotency key

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 02:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('orders', sa.Column('capture_claim_token', sa.String(32), nullable=True))
    op.add_column('orders', sa.Column('capture_attempt', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('orders') as batch:
        batch.alter_column('capture_attempt', existing_type=sa.Integer(), server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('orders') as batch:
        batch.drop_column('capture_attempt')
        batch.drop_column('capture_claim_token')
