"""project proposals: the 票决 candidate an accepted 征集 proposal became

Revision ID: 0021
Revises: 0020
"""
from alembic import op
import sqlalchemy as sa


revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("project_proposals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("candidate_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_project_proposals_candidate_id", "project_candidates",
                                    ["candidate_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("project_proposals", schema=None) as batch_op:
        batch_op.drop_constraint("fk_project_proposals_candidate_id", type_="foreignkey")
        batch_op.drop_column("candidate_id")
