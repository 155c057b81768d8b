"""bulletins (通报) and rectifications (整改), county-owned with row-level security

Revision ID: 0009
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa


revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None

NEW_TABLES = ("bulletins", "rectifications")
POLICY = "tenant_isolation"
VISIBLE = ("(current_setting('liaison.all_counties', true) = 'on' OR county_id = ANY ("
           "string_to_array(NULLIF(current_setting('liaison.county_ids', true), ''), ',')::integer[]))")
WRITE_COUNTY_DEFAULT = "NULLIF(current_setting('liaison.county_id', true), '')::integer"


def _ts(name, nullable=True):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _county():
    return sa.Column("county_id", sa.Integer(), sa.ForeignKey("counties.id"), nullable=False,
                     server_default="1")


def _isolate(table: str) -> None:
    op.execute(f"ALTER TABLE {table} ALTER COLUMN county_id SET DEFAULT {WRITE_COUNTY_DEFAULT}")
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY {POLICY} ON {table} USING {VISIBLE} WITH CHECK {VISIBLE}")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "bulletins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=24), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("until", sa.Date(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        _ts("created_at", False),
        _ts("published_at"),
        _county(),
        sa.ForeignKeyConstraint(["station_id"], ["stations.id"]),
        sa.ForeignKeyConstraint(["created_by_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_id"),
    )
    op.create_index("ix_bulletins_station_id", "bulletins", ["station_id"])
    op.create_index("ix_bulletins_county_id", "bulletins", ["county_id"])
    op.create_table(
        "rectifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=24), nullable=False),
        sa.Column("bulletin_id", sa.Integer(), nullable=False),
        sa.Column("unit_kind", sa.String(length=16), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("unit_label", sa.String(length=100), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=True),
        sa.Column("figure", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        _ts("deadline", False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("response", sa.Text(), nullable=True),
        _ts("responded_at"),
        sa.Column("responded_by_id", sa.Integer(), nullable=True),
        sa.Column("review_note", sa.Text(), nullable=True),
        _ts("verified_at"),
        sa.Column("verified_by_id", sa.Integer(), nullable=True),
        _ts("created_at", False),
        sa.Column("history", sa.JSON(), nullable=False),
        _county(),
        sa.ForeignKeyConstraint(["bulletin_id"], ["bulletins.id"]),
        sa.ForeignKeyConstraint(["station_id"], ["stations.id"]),
        sa.ForeignKeyConstraint(["responded_by_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["verified_by_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_id"),
    )
    for column in ("bulletin_id", "station_id", "status", "county_id"):
        op.create_index(f"ix_rectifications_{column}", "rectifications", [column])
    if postgres:
        for table in NEW_TABLES:
            _isolate(table)


def downgrade() -> None:
    op.drop_table("rectifications")
    op.drop_table("bulletins")
