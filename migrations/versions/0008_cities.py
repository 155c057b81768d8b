"""cities: a city groups counties; city staff accounts (`accounts.city_id`) see the city's figures

`cities` is not county-owned (no row-level security): a city row names no personal data. The console's
own tables become county-owned in 0009.

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa



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


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_constraint("fk_accounts_city_id", type_="foreignkey")
        batch.drop_column("city_id")
    with op.batch_alter_table("counties") as batch:
        batch.drop_constraint("fk_counties_city_id", type_="foreignkey")
        batch.drop_index("ix_counties_city_id")
        batch.drop_column("city_id")
    op.drop_table("cities")
