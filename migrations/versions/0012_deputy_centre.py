"""the deputy at the centre: the deputy a resident scanned (一人一码), walk-in matters, 交办单 codes,
回访 records

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa


revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}
NEW_TABLES = ("walk_ins", "case_codes", "return_visits", "enterprises")
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
    with op.batch_alter_table("residents", naming_convention=SQLITE_NAMES) as batch:
        batch.add_column(sa.Column("deputy_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_residents_deputy_id_deputies", "deputies", ["deputy_id"], ["id"])
    op.create_table(
        "walk_ins",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False, unique=True),
        sa.Column("registered_by", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("place_kind", sa.String(length=16), nullable=False),
        sa.Column("place", sa.String(length=200), nullable=True),
        sa.Column("resident_name", sa.String(length=50), nullable=False),
        sa.Column("resident_phone", sa.String(length=32), nullable=True),
        sa.Column("contact_consent", sa.Boolean(), nullable=False),
        _ts("created_at", False),
        _county(),
    )
    op.create_table(
        "case_codes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False, unique=True),
        sa.Column("ticket", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=300), nullable=False),
        _ts("expires_at", False),
        _ts("claimed_at"),
        _ts("created_at", False),
        _county(),
    )
    op.create_index("ix_case_codes_case_id", "case_codes", ["case_id"])
    op.create_table(
        "return_visits",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("visitor", sa.String(length=50), nullable=False),
        _ts("visited_at", False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("rating_id", sa.Integer(), sa.ForeignKey("ratings.id"), nullable=True),
        sa.Column("recorded_by", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False),
        _ts("created_at", False),
        _county(),
    )
    op.create_index("ix_return_visits_case_id", "return_visits", ["case_id"])
    with op.batch_alter_table("grids") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=16), nullable=False, server_default="community"))
    op.create_table(
        "enterprises",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("grid_id", sa.Integer(), sa.ForeignKey("grids.id"), nullable=False),
        sa.Column("contact_name", sa.String(length=50), nullable=True),
        sa.Column("contact_phone", sa.String(length=32), nullable=True),
        _ts("created_at", False),
        _county(),
        sa.UniqueConstraint("county_id", "code", name="uq_enterprises_county_code"),
    )
    op.create_index("ix_enterprises_grid_id", "enterprises", ["grid_id"])
    for table in NEW_TABLES:
        op.create_index(f"ix_{table}_county_id", table, ["county_id"])
    if op.get_bind().dialect.name == "postgresql":
        for table in NEW_TABLES:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN county_id SET DEFAULT {WRITE_COUNTY_DEFAULT}")
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY {POLICY} ON {table} USING {VISIBLE} WITH CHECK {VISIBLE}")


def downgrade() -> None:
    for table in reversed(NEW_TABLES):
        op.drop_table(table)
    with op.batch_alter_table("grids") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("residents", naming_convention=SQLITE_NAMES) as batch:
        batch.drop_constraint("fk_residents_deputy_id_deputies", type_="foreignkey")
        batch.drop_column("deputy_id")
