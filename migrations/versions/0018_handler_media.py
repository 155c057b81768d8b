"""media: photos handlers attach to their 答复 and 办结 (issue 15)

`media_files` rows uploaded by a handler: `account_id` (who uploaded it), `event_id` (the timeline
entry it is attached to, once attached); such rows have no WeChat media id.

Revision ID: 0018
Revises: 0017
"""
from alembic import op
import sqlalchemy as sa


revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

TABLE = "media_files"
# SQLite (the schema test) rebuilds the table in batch mode: its unnamed constraints need names.
SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
                "uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    with op.batch_alter_table(TABLE, naming_convention=SQLITE_NAMES) as batch:
        batch.add_column(sa.Column("account_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("event_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_media_files_account_id_accounts", "accounts", ["account_id"], ["id"])
        batch.create_foreign_key("fk_media_files_event_id_case_events", "case_events", ["event_id"], ["id"])
        batch.alter_column("wechat_media_id", existing_type=sa.String(128), nullable=True)


def downgrade() -> None:
    op.execute(f"DELETE FROM {TABLE} WHERE wechat_media_id IS NULL")
    with op.batch_alter_table(TABLE, naming_convention=SQLITE_NAMES) as batch:
        batch.alter_column("wechat_media_id", existing_type=sa.String(128), nullable=False)
        batch.drop_constraint("fk_media_files_event_id_case_events", type_="foreignkey")
        batch.drop_constraint("fk_media_files_account_id_accounts", type_="foreignkey")
        batch.drop_column("event_id")
        batch.drop_column("account_id")
