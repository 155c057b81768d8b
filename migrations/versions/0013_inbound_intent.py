"""inbound messages keep what a text said and what the conversation took it for

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa


revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("inbound_messages", sa.Column("intent", sa.String(length=32), nullable=True))
    op.add_column("inbound_messages", sa.Column("text", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("inbound_messages", "text")
    op.drop_column("inbound_messages", "intent")
