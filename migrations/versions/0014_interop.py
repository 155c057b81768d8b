"""interop: Open311 partner keys and their call log, hand-off targets (直通车), external links

County-owned tables with the row-level-security policy of migration 0006.

Revision ID: 0014
Revises: 0013
"""
from alembic import op
import sqlalchemy as sa


revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TABLES = ("open311_partners", "handoff_targets", "external_links", "open311_calls")
POLICY = "tenant_isolation"
VISIBLE = ("(current_setting('liaison.all_counties', true) = 'on' OR county_id = ANY ("
           "string_to_array(NULLIF(current_setting('liaison.county_ids', true), ''), ',')::integer[]))")
WRITE_COUNTY_DEFAULT = "NULLIF(current_setting('liaison.county_id', true), '')::integer"


def _ts(name, nullable=True):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _county():
    return sa.Column("county_id", sa.Integer(), sa.ForeignKey("counties.id"), nullable=False,
                     server_default="1")


def upgrade() -> None:
    op.create_table(
        "open311_partners",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("public_id", sa.String(24), nullable=False, unique=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_prefix", sa.String(12), nullable=False),
        sa.Column("resident_id", sa.Integer(), sa.ForeignKey("residents.id"), nullable=True),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=True),
        _ts("created_at", False), _ts("revoked_at"), _county(),
    )
    op.create_table(
        "handoff_targets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("category", sa.String(32), nullable=True),
        sa.Column("endpoint", sa.String(300), nullable=False),
        sa.Column("api_key", sa.String(128), nullable=False),
        sa.Column("service_code", sa.String(64), nullable=True),
        sa.Column("jurisdiction_id", sa.String(64), nullable=True),
        _ts("created_at", False), _ts("removed_at"), _county(),
        sa.UniqueConstraint("county_id", "category"),
    )
    op.create_table(
        "external_links",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("target_id", sa.Integer(), sa.ForeignKey("handoff_targets.id"), nullable=True),
        sa.Column("partner_id", sa.Integer(), sa.ForeignKey("open311_partners.id"), nullable=True),
        sa.Column("external_id", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("external_status", sa.String(16), nullable=True),
        sa.Column("notes_seen", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        _ts("next_poll_at"), _ts("created_at", False), _ts("updated_at", False), _county(),
        sa.UniqueConstraint("partner_id", "token"),
    )
    op.create_index("ix_external_links_case_id", "external_links", ["case_id"])
    op.create_index("ix_external_links_token", "external_links", ["token"])
    op.create_index("ix_external_links_next_poll_at", "external_links", ["next_poll_at"])
    op.create_table(
        "open311_calls",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("partner_id", sa.Integer(), sa.ForeignKey("open311_partners.id"), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(200), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        _ts("at", False), _county(),
    )
    op.create_index("ix_open311_calls_partner_id", "open311_calls", ["partner_id"])
    for table in TABLES:
        op.create_index(f"ix_{table}_county_id", table, ["county_id"])
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN county_id SET DEFAULT {WRITE_COUNTY_DEFAULT}")
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY {POLICY} ON {table} USING {VISIBLE} WITH CHECK {VISIBLE}")


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
