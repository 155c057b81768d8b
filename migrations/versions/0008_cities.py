"""cities: a city groups counties; city staff accounts (`accounts.city_id`) see the city's figures;
the console's tables become county-owned

`cities` is not county-owned (no row-level security): a city row names no personal data. The console's
credentials, password links and sessions (0007 came without a county) take their account's county and
the row-level-security policy of 0006.

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa

POLICY = "tenant_isolation"
VISIBLE = ("(current_setting('liaison.all_counties', true) = 'on' OR county_id = ANY ("
           "string_to_array(NULLIF(current_setting('liaison.county_ids', true), ''), ',')::integer[]))")
WRITE_COUNTY_DEFAULT = "NULLIF(current_setting('liaison.county_id', true), '')::integer"
CONSOLE_TABLES = ("console_credentials", "console_password_links", "console_sessions")


revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    with op.batch_alter_table("counties") as batch:
        batch.add_column(sa.Column("city_id", sa.Integer(), nullable=True))
        batch.create_index("ix_counties_city_id", ["city_id"], unique=False)
        batch.create_foreign_key("fk_counties_city_id", "cities", ["city_id"], ["id"])
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("city_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_accounts_city_id", "cities", ["city_id"], ["id"])
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in CONSOLE_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("county_id", sa.Integer(), nullable=False, server_default="1"))
            batch.create_index(f"ix_{table}_county_id", ["county_id"], unique=False)
            batch.create_foreign_key(f"fk_{table}_county_id", "counties", ["county_id"], ["id"])
        op.execute(f"UPDATE {table} SET county_id = (SELECT accounts.county_id FROM accounts "
                   f"WHERE accounts.id = {table}.account_id)")
        if postgres:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN county_id SET DEFAULT {WRITE_COUNTY_DEFAULT}")
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY {POLICY} ON {table} USING {VISIBLE} WITH CHECK {VISIBLE}")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in CONSOLE_TABLES:
        if postgres:
            op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_county_id", type_="foreignkey")
            batch.drop_index(f"ix_{table}_county_id")
            batch.drop_column("county_id")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_constraint("fk_accounts_city_id", type_="foreignkey")
        batch.drop_column("city_id")
    with op.batch_alter_table("counties") as batch:
        batch.drop_constraint("fk_counties_city_id", type_="foreignkey")
        batch.drop_index("ix_counties_city_id")
        batch.drop_column("city_id")
    op.drop_table("cities")
