"""counties as tenants: `counties`, `county_id` on every county-owned table, row-level security

Existing rows go to the default county (id 1, code from LIAISON_DEFAULT_COUNTY_CODE or "default").
Registry codes and QR scenes become unique per county. On PostgreSQL every county-owned table gets
ROW LEVEL SECURITY (FORCEd, so the table owner obeys it too) with one policy keyed on the
transaction-local settings `liaison.county_ids` ("1,2,...") and `liaison.all_counties` ("on" for
system work); the column's default is the write county `liaison.county_id`. Data migrations after
this one see every county (migrations/env.py sets `liaison.all_counties` for their transaction).

Revision ID: 0006
Revises: 0005
"""
import os

from alembic import op
import sqlalchemy as sa


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = (
    "departments", "idempotency_keys", "qr_codes", "stations", "deputies", "grids", "accounts",
    "deputy_grids", "residents", "binding_codes", "broadcasts", "cases", "keyword_rules", "mass_quotas",
    "notification_consents", "project_votes", "broadcast_recipients", "case_events", "case_followers",
    "classifier_corrections", "extension_requests", "inbound_messages", "mass_batches", "notices",
    "outbox", "project_ballots", "project_candidates", "ratings", "surveys", "delivery_attempts",
    "survey_prompts", "survey_votes",
)
# (table, column): unique on the column alone before, unique per county after.
PER_COUNTY_UNIQUE = (("stations", "code"), ("grids", "code"), ("deputies", "code"),
                     ("departments", "code"), ("qr_codes", "scene"))
POLICY = "tenant_isolation"
VISIBLE = ("(current_setting('liaison.all_counties', true) = 'on' OR county_id = ANY ("
           "string_to_array(NULLIF(current_setting('liaison.county_ids', true), ''), ',')::integer[]))")
WRITE_COUNTY_DEFAULT = "NULLIF(current_setting('liaison.county_id', true), '')::integer"
SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "counties",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("wechat_app_id", sa.String(length=64), nullable=True),
        sa.Column("wechat_app_secret", sa.String(length=128), nullable=True),
        sa.Column("wechat_token", sa.String(length=64), nullable=True),
        sa.Column("wechat_encoding_aes_key", sa.String(length=43), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
        sa.UniqueConstraint("wechat_app_id"),
    )
    counties = sa.table("counties", sa.column("id", sa.Integer), sa.column("code", sa.String),
                        sa.column("name", sa.String), sa.column("settings", sa.JSON),
                        sa.column("created_at", sa.DateTime(timezone=True)))
    op.execute(counties.insert().values(
        id=1, code=os.environ.get("LIAISON_DEFAULT_COUNTY_CODE") or "default", name="本县", settings={},
        created_at=sa.func.current_timestamp()))
    if postgres:
        op.execute("SELECT setval(pg_get_serial_sequence('counties', 'id'), 1)")
    for table in TABLES:
        with op.batch_alter_table(table, naming_convention=SQLITE_NAMES) as batch:
            batch.add_column(sa.Column("county_id", sa.Integer(), nullable=False, server_default="1"))
            batch.create_index(f"ix_{table}_county_id", ["county_id"], unique=False)
            batch.create_foreign_key(f"fk_{table}_county_id", "counties", ["county_id"], ["id"])
    for table, column in PER_COUNTY_UNIQUE:
        with op.batch_alter_table(table, naming_convention=SQLITE_NAMES) as batch:
            batch.drop_constraint(f"{table}_{column}_key" if postgres else f"uq_{table}_{column}",
                                  type_="unique")
            batch.create_unique_constraint(f"uq_{table}_county_{column}", ["county_id", column])
    if postgres:
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN county_id SET DEFAULT {WRITE_COUNTY_DEFAULT}")
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY {POLICY} ON {table} USING {VISIBLE} WITH CHECK {VISIBLE}")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for table in TABLES:
            op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    for table, column in PER_COUNTY_UNIQUE:
        with op.batch_alter_table(table, naming_convention=SQLITE_NAMES) as batch:
            batch.drop_constraint(f"uq_{table}_county_{column}", type_="unique")
            batch.create_unique_constraint(f"{table}_{column}_key" if postgres else f"uq_{table}_{column}",
                                           [column])
    for table in TABLES:
        with op.batch_alter_table(table, naming_convention=SQLITE_NAMES) as batch:
            batch.drop_constraint(f"fk_{table}_county_id", type_="foreignkey")
            batch.drop_index(f"ix_{table}_county_id")
            batch.drop_column("county_id")
    op.drop_table("counties")
