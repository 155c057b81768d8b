"""the deputy at the centre: the deputy a resident scanned (一人一码)

Revision ID: 0012
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa


revision = "0012"
down_revision = "0007"
branch_labels = None
depends_on = None

SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def upgrade() -> None:
    with op.batch_alter_table("residents", naming_convention=SQLITE_NAMES) as batch:
        batch.add_column(sa.Column("deputy_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_residents_deputy_id_deputies", "deputies", ["deputy_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("residents", naming_convention=SQLITE_NAMES) as batch:
        batch.drop_constraint("fk_residents_deputy_id_deputies", type_="foreignkey")
        batch.drop_column("deputy_id")
