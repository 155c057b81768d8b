"""三级联动: `case_referrals` (a case handed up to its county's city and back) and the narrow
row-level-security policies that let city staff see exactly the cases handed up to their city

City staff work with `liaison.county_ids` empty (no county wholesale) and `liaison.city_id` set. A
second, permissive policy `city_access` on the tables below lets them see (and, where they act,
write) only: the hand-ups to their city from its counties, those cases, their timelines, notices,
outbox rows and residents, their counties' registry (names), their city's own staff accounts and
those accounts' stored Idempotency-Key answers.
Every other county-owned table keeps `tenant_isolation` alone and shows them nothing. The domain says
the same in `liaison.core.tenant.CITY_RULES`.

Revision ID: 0019
Revises: 0018
"""
from alembic import op
import sqlalchemy as sa


revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

TABLE = "case_referrals"
POLICY = "tenant_isolation"
CITY_POLICY = "city_access"
VISIBLE = ("(current_setting('liaison.all_counties', true) = 'on' OR county_id = ANY ("
           "string_to_array(NULLIF(current_setting('liaison.county_ids', true), ''), ',')::integer[]))")
WRITE_COUNTY_DEFAULT = "NULLIF(current_setting('liaison.county_id', true), '')::integer"
CITY = "NULLIF(current_setting('liaison.city_id', true), '')::integer"
IN_CITY = f"county_id IN (SELECT id FROM counties WHERE city_id = {CITY})"
# The hand-ups visible to the session (its own policies apply inside the subquery).
HANDED_UP = "SELECT case_id FROM case_referrals"
# table -> (command, condition), besides IN_CITY and `liaison.city_id` being set.
CITY_ACCESS = {
    "case_referrals": ("ALL", f"city_id = {CITY}"),
    "cases": ("ALL", f"id IN ({HANDED_UP})"),
    "case_events": ("ALL", f"case_id IN ({HANDED_UP})"),
    "notices": ("ALL", f"case_id IN ({HANDED_UP})"),
    "outbox": ("ALL", f"case_id IN ({HANDED_UP})"),
    "residents": ("SELECT", f"id IN (SELECT resident_id FROM cases WHERE id IN ({HANDED_UP}))"),
    "stations": ("SELECT", "true"),
    "grids": ("SELECT", "true"),
    "deputies": ("SELECT", "true"),
    "departments": ("SELECT", "true"),
    "deputy_grids": ("SELECT", "true"),
    "accounts": ("SELECT", f"city_id = {CITY}"),
    "idempotency_keys": ("ALL", f"principal IN (SELECT 'account:' || id FROM accounts WHERE city_id = {CITY})"),
}


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("public_id", sa.String(24), nullable=False, unique=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("city_id", sa.Integer(), sa.ForeignKey("cities.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("handed_up_by", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=True),
        sa.Column("handed_up_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("answered_by", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("return_note", sa.Text(), nullable=True),
        sa.Column("returned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("county_id", sa.Integer(), sa.ForeignKey("counties.id"), nullable=False,
                  server_default="1"),
    )
    for column in ("case_id", "city_id", "status", "county_id"):
        op.create_index(f"ix_{TABLE}_{column}", TABLE, [column])
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE {TABLE} ALTER COLUMN county_id SET DEFAULT {WRITE_COUNTY_DEFAULT}")
    op.execute(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY {POLICY} ON {TABLE} USING {VISIBLE} WITH CHECK {VISIBLE}")
    for table, (command, condition) in CITY_ACCESS.items():
        visible = f"({CITY} IS NOT NULL AND {IN_CITY} AND {condition})"
        check = f" WITH CHECK {visible}" if command == "ALL" else ""
        op.execute(f"CREATE POLICY {CITY_POLICY} ON {table} FOR {command} USING {visible}{check}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in CITY_ACCESS:
            op.execute(f"DROP POLICY IF EXISTS {CITY_POLICY} ON {table}")
    op.drop_table(TABLE)
