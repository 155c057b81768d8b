"""walk_ins.shift_id: the duty shift a walk-in matter was received on

walk_ins already carries county_id and its row-level-security policy; a nullable column only.

Revision ID: 0016
Revises: 0015
"""
from alembic import op
import sqlalchemy as sa


revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# SQLite (the schema test) rebuilds the table in batch mode: its unnamed constraints need names.
SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
                "uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    with op.batch_alter_table("walk_ins", naming_convention=SQLITE_NAMES) as batch:
        batch.add_column(sa.Column("shift_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_walk_ins_shift_id_duty_shifts", "duty_shifts", ["shift_id"], ["id"])
    op.create_index("ix_walk_ins_shift_id", "walk_ins", ["shift_id"])


def downgrade() -> None:
    op.drop_index("ix_walk_ins_shift_id", table_name="walk_ins")
    with op.batch_alter_table("walk_ins", naming_convention=SQLITE_NAMES) as batch:
        batch.drop_constraint("fk_walk_ins_shift_id_duty_shifts", type_="foreignkey")
        batch.drop_column("shift_id")
