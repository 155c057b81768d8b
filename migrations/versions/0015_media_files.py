"""media: chat photos and voice kept beyond WeChat's media expiry (issue 15)

A county-owned table with the row-level-security policy of migration 0006.

Revision ID: 0015
Revises: 0014
"""
from alembic import op
import sqlalchemy as sa


revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TABLE = "media_files"
POLICY = "tenant_isolation"
VISIBLE = ("(current_setting('liaison.all_counties', true) = 'on' OR county_id = ANY ("
           "string_to_array(NULLIF(current_setting('liaison.county_ids', true), ''), ',')::integer[]))")
WRITE_COUNTY_DEFAULT = "NULLIF(current_setting('liaison.county_id', true), '')::integer"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("public_id", sa.String(24), nullable=False, unique=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("resident_id", sa.Integer(), sa.ForeignKey("residents.id"), nullable=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("wechat_media_id", sa.String(128), nullable=False),
        sa.Column("format", sa.String(16), nullable=True),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("storage_key", sa.String(200), nullable=True),
        sa.Column("content_type", sa.String(100), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("county_id", sa.Integer(), sa.ForeignKey("counties.id"), nullable=False,
                  server_default="1"),
    )
    op.create_index("ix_media_files_case_id", TABLE, ["case_id"])
    op.create_index("ix_media_files_state", TABLE, ["state"])
    op.create_index("ix_media_files_county_id", TABLE, ["county_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {TABLE} ALTER COLUMN county_id SET DEFAULT {WRITE_COUNTY_DEFAULT}")
        op.execute(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {POLICY} ON {TABLE} USING {VISIBLE} WITH CHECK {VISIBLE}")


def downgrade() -> None:
    op.drop_table(TABLE)
