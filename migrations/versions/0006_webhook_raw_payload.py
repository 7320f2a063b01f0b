"""the signed body of a webhook event whose JSON PostgreSQL cannot store as it is

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 23:59:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('stripe_events', sa.Column('raw_payload', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('stripe_events', 'raw_payload')
