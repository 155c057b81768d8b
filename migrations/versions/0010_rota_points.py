"""rota, 履职积分 and 述职测评: duty rules and shifts, assignments, swaps, grid visits; points standards,
the points ledger, offline activity reports and their reviews, adjustments; quarterly appraisals and
their 整改 items

Every table is county-owned, with the row-level-security policy of 0006.

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa


revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

POLICY = "tenant_isolation"
VISIBLE = ("(current_setting('liaison.all_counties', true) = 'on' OR county_id = ANY ("
           "string_to_array(NULLIF(current_setting('liaison.county_ids', true), ''), ',')::integer[]))")
WRITE_COUNTY_DEFAULT = "NULLIF(current_setting('liaison.county_id', true), '')::integer"
TABLES = ("duty_rules", "duty_shifts", "shift_assignments", "shift_swaps", "grid_visits",
          "points_standards", "points_entries", "activity_reports", "activity_reviews", "points_adjustments",
          "appraisals", "rectifications")
POINTS = sa.Numeric(8, 2)


def _ts(name, nullable=True):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _county():
    return sa.Column("county_id", sa.Integer(), sa.ForeignKey("counties.id"), nullable=False,
                     server_default="1")


def _public_id():
    return sa.Column("public_id", sa.String(length=24), nullable=False, unique=True)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "duty_rules",
        sa.Column("id", sa.Integer(), primary_key=True),
        _public_id(),
        sa.Column("station_id", sa.Integer(), sa.ForeignKey("stations.id"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=60), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("start_minute", sa.Integer(), nullable=False),
        sa.Column("end_minute", sa.Integer(), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("deputy_ids", sa.JSON(), nullable=False),
        sa.Column("account_ids", sa.JSON(), nullable=False),
        sa.Column("holiday_policy", sa.String(length=20), nullable=False),
        sa.Column("on_makeup_days", sa.Boolean(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=True),
        _ts("created_at", False),
        _county(),
    )
    op.create_index("ix_duty_rules_station_id", "duty_rules", ["station_id"])
    op.create_table(
        "duty_shifts",
        sa.Column("id", sa.Integer(), primary_key=True),
        _public_id(),
        sa.Column("station_id", sa.Integer(), sa.ForeignKey("stations.id"), nullable=False),
        sa.Column("rule_id", sa.Integer(), sa.ForeignKey("duty_rules.id"), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=60), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("planned_for", sa.Date(), nullable=False),
        _ts("starts_at", False),
        _ts("ends_at", False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=True),
        _ts("reminded_at"),
        _ts("noticed_at"),
        _ts("created_at", False),
        _county(),
        sa.UniqueConstraint("rule_id", "planned_for"),
    )
    op.create_index("ix_duty_shifts_station_id", "duty_shifts", ["station_id"])
    op.create_index("ix_duty_shifts_day", "duty_shifts", ["day"])
    op.create_index("ix_duty_shifts_status", "duty_shifts", ["status"])
    op.create_table(
        "shift_assignments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("shift_id", sa.Integer(), sa.ForeignKey("duty_shifts.id"), nullable=False),
        sa.Column("deputy_id", sa.Integer(), sa.ForeignKey("deputies.id"), nullable=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        _ts("checked_in_at"),
        sa.Column("check_in_via", sa.String(length=16), nullable=True),
        _county(),
        sa.UniqueConstraint("shift_id", "deputy_id"),
        sa.UniqueConstraint("shift_id", "account_id"),
    )
    op.create_index("ix_shift_assignments_shift_id", "shift_assignments", ["shift_id"])
    op.create_index("ix_shift_assignments_deputy_id", "shift_assignments", ["deputy_id"])
    op.create_table(
        "shift_swaps",
        sa.Column("id", sa.Integer(), primary_key=True),
        _public_id(),
        sa.Column("assignment_id", sa.Integer(), sa.ForeignKey("shift_assignments.id"), nullable=False),
        sa.Column("substitute_deputy_id", sa.Integer(), sa.ForeignKey("deputies.id"), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=True),
        _ts("decided_at"),
        sa.Column("decision_note", sa.String(length=200), nullable=True),
        _ts("created_at", False),
        _county(),
    )
    op.create_index("ix_shift_swaps_assignment_id", "shift_swaps", ["assignment_id"])
    op.create_table(
        "grid_visits",
        sa.Column("id", sa.Integer(), primary_key=True),
        _public_id(),
        sa.Column("deputy_id", sa.Integer(), sa.ForeignKey("deputies.id"), nullable=False),
        sa.Column("grid_id", sa.Integer(), sa.ForeignKey("grids.id"), nullable=False),
        _ts("visited_at", False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("photo_media_id", sa.String(length=128), nullable=True),
        _ts("created_at", False),
        _county(),
    )
    op.create_index("ix_grid_visits_deputy_id", "grid_visits", ["deputy_id"])
    op.create_index("ix_grid_visits_visited_at", "grid_visits", ["visited_at"])
    op.create_table(
        "points_standards",
        sa.Column("id", sa.Integer(), primary_key=True),
        _public_id(),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("grades", sa.JSON(), nullable=False),
        sa.Column("review_chain", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=True),
        _ts("created_at", False),
        _county(),
        sa.UniqueConstraint("county_id", "year", "version"),
    )
    op.create_table(
        "points_entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("deputy_id", sa.Integer(), sa.ForeignKey("deputies.id"), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("standard_id", sa.Integer(), sa.ForeignKey("points_standards.id"), nullable=False),
        sa.Column("item_code", sa.String(length=32), nullable=False),
        sa.Column("points", POINTS, nullable=False),
        sa.Column("source_ref", sa.String(length=64), nullable=False),
        _ts("occurred_at", False),
        _ts("created_at", False),
        _county(),
        sa.UniqueConstraint("deputy_id", "year", "item_code", "source_ref"),
    )
    op.create_index("ix_points_entries_deputy_id", "points_entries", ["deputy_id"])
    op.create_index("ix_points_entries_year", "points_entries", ["year"])
    op.create_table(
        "activity_reports",
        sa.Column("id", sa.Integer(), primary_key=True),
        _public_id(),
        sa.Column("deputy_id", sa.Integer(), sa.ForeignKey("deputies.id"), nullable=False),
        sa.Column("standard_id", sa.Integer(), sa.ForeignKey("points_standards.id"), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("item_code", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("happened_on", sa.Date(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("photo_media_ids", sa.JSON(), nullable=False),
        sa.Column("chain", sa.JSON(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _ts("decided_at"),
        _ts("created_at", False),
        _county(),
    )
    op.create_index("ix_activity_reports_deputy_id", "activity_reports", ["deputy_id"])
    op.create_index("ix_activity_reports_status", "activity_reports", ["status"])
    op.create_table(
        "activity_reviews",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("report_id", sa.Integer(), sa.ForeignKey("activity_reports.id"), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("step_name", sa.String(length=40), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=True),
        _ts("decided_at", False),
        _county(),
        sa.UniqueConstraint("report_id", "step"),
    )
    op.create_index("ix_activity_reviews_report_id", "activity_reviews", ["report_id"])
    op.create_table(
        "points_adjustments",
        sa.Column("id", sa.Integer(), primary_key=True),
        _public_id(),
        sa.Column("deputy_id", sa.Integer(), sa.ForeignKey("deputies.id"), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("points", POINTS, nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False),
        _ts("created_at", False),
        _county(),
    )
    op.create_index("ix_points_adjustments_deputy_id", "points_adjustments", ["deputy_id"])
    op.create_table(
        "appraisals",
        sa.Column("id", sa.Integer(), primary_key=True),
        _public_id(),
        sa.Column("deputy_id", sa.Integer(), sa.ForeignKey("deputies.id"), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("quarter", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), sa.ForeignKey("surveys.id"), nullable=False, unique=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        _ts("closes_at", False),
        sa.Column("rated", sa.Integer(), nullable=False),
        sa.Column("satisfaction_rate", sa.Float(), nullable=True),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=True),
        _ts("created_at", False),
        _ts("closed_at"),
        _county(),
        sa.UniqueConstraint("deputy_id", "year", "quarter", "round"),
    )
    op.create_index("ix_appraisals_deputy_id", "appraisals", ["deputy_id"])
    op.create_index("ix_appraisals_status", "appraisals", ["status"])
    op.create_table(
        "rectifications",
        sa.Column("id", sa.Integer(), primary_key=True),
        _public_id(),
        sa.Column("appraisal_id", sa.Integer(), sa.ForeignKey("appraisals.id"), nullable=False, unique=True),
        sa.Column("deputy_id", sa.Integer(), sa.ForeignKey("deputies.id"), nullable=False),
        _ts("deadline", False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("report", sa.Text(), nullable=True),
        _ts("done_at"),
        sa.Column("second_appraisal_id", sa.Integer(), sa.ForeignKey("appraisals.id"), nullable=True),
        _ts("created_at", False),
        _county(),
    )
    op.create_index("ix_rectifications_deputy_id", "rectifications", ["deputy_id"])
    for table in TABLES:
        op.create_index(f"ix_{table}_county_id", table, ["county_id"])
        if postgres:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN county_id SET DEFAULT {WRITE_COUNTY_DEFAULT}")
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY {POLICY} ON {table} USING {VISIBLE} WITH CHECK {VISIBLE}")


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
