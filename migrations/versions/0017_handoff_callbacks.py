"""handoff callbacks: a per-target secret for signed status pushes, and the pushes accepted

`handoff_callbacks` is county-owned, with the row-level-security policy of migration 0006.

Revision ID: 0017
Revises: 0016
"""
from alembic import op
import sqlalchemy as sa


revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TABLE = "handoff_callbacks"
POLICY = "tenant_isolation"
VISIBLE = ("(current_setting('liaison.all_counties', true) = 'on' OR county_id = ANY ("
           "string_to_array(NULLIF(current_setting('liaison.county_ids', true), ''), ',')::integer[]))")
WRITE_COUNTY_DEFAULT = "NULLIF(current_setting('liaison.county_id', true), '')::integer"


def upgrade() -> None:
    op.add_column("handoff_targets", sa.Column("callback_secret", sa.String(64), nullable=True))
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("link_id", sa.Integer(), sa.ForeignKey("external_links.id"), nullable=False),
        sa.Column("signature", sa.String(64), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("county_id", sa.Integer(), sa.ForeignKey("counties.id"), nullable=False,
                  server_default="1"),
        sa.UniqueConstraint("link_id", "signature"),
    )
    op.create_index(f"ix_{TABLE}_link_id", TABLE, ["link_id"])
    op.create_index(f"ix_{TABLE}_county_id", TABLE, ["county_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {TABLE} ALTER COLUMN county_id SET DEFAULT {WRITE_COUNTY_DEFAULT}")
        op.execute(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {POLICY} ON {TABLE} USING {VISIBLE} WITH CHECK {VISIBLE}")


def downgrade() -> None:
    op.drop_table(TABLE)
    op.drop_column("handoff_targets", "callback_secret")
