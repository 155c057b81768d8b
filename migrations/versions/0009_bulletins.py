"""bulletins (通报) and bulletin_rectifications (整改 ordered by a 通报), county-owned with row-level security; `county_id` and
the same policy on the console's tables (credentials, password links, sessions), their rows taking
the county of their account; an index on cases (created_at, id), the 台账's order

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

NEW_TABLES = ("bulletins", "bulletin_rectifications")
CONSOLE_TABLES = ("console_credentials", "console_password_links", "console_sessions")
SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
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
        "bulletin_rectifications",
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
        op.create_index(f"ix_bulletin_rectifications_{column}", "bulletin_rectifications", [column])
    op.create_index("ix_cases_created_id", "cases", ["created_at", "id"])  # the 台账's order
    for table in CONSOLE_TABLES:
        with op.batch_alter_table(table, naming_convention=SQLITE_NAMES) as batch:
            batch.add_column(sa.Column("county_id", sa.Integer(), nullable=False, server_default="1"))
            batch.create_index(f"ix_{table}_county_id", ["county_id"], unique=False)
            batch.create_foreign_key(f"fk_{table}_county_id", "counties", ["county_id"], ["id"])
        op.execute(f"UPDATE {table} SET county_id = (SELECT accounts.county_id FROM accounts"
                   f" WHERE accounts.id = {table}.account_id)")
    if postgres:
        for table in NEW_TABLES + CONSOLE_TABLES:
            _isolate(table)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in CONSOLE_TABLES:
        if postgres:
            op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        with op.batch_alter_table(table, naming_convention=SQLITE_NAMES) as batch:
            batch.drop_constraint(f"fk_{table}_county_id", type_="foreignkey")
            batch.drop_index(f"ix_{table}_county_id")
            batch.drop_column("county_id")
    op.drop_index("ix_cases_created_id", table_name="cases")
    op.drop_table("bulletin_rectifications")
    op.drop_table("bulletins")
