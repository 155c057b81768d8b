"""console speed: timeline facts on the case row, the statistics' daily summary and its stale marks

- `cases.accepted_at` (first `accept`), `cases.rating` (the resident's rating of the latest rated
  round), `cases.source` (the `submit` entry's channel) and `cases.resident_tag` (the masked
  诉求人), back-filled from the timeline and the residents; the
  domain keeps them in the writing transaction from now on. `ix_cases_grid_created` serves the
  台账 of one grid in its order.
- `console_daily_figures`: the statistics' counters per county, day and dimension values, written
  by the recount job; `console_stale_days`: (county, day) marks added by a statement trigger on
  `cases` (PostgreSQL only; SQLite counts live). Every existing day is marked, so the first recount
  builds the summary. Both tables are county-owned with the row-level-security policy of 0006.

Revision ID: 0020
Revises: 0019
"""
from alembic import op
import sqlalchemy as sa


revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

POLICY = "tenant_isolation"
VISIBLE = ("(current_setting('liaison.all_counties', true) = 'on' OR county_id = ANY ("
           "string_to_array(NULLIF(current_setting('liaison.county_ids', true), ''), ',')::integer[]))")
WRITE_COUNTY_DEFAULT = "NULLIF(current_setting('liaison.county_id', true), '')::integer"
COUNTERS = ("received_n", "closed_rate_n", "closed_rate_d", "on_time_rate_n", "on_time_rate_d",
            "satisfaction_rate_n", "satisfaction_rate_d", "unrated_n", "second_round_rate_n",
            "second_round_rate_d", "response_days_d", "response_days_days", "closing_days_d",
            "closing_days_days", "overdue_n")
LOCAL_DAY = "(({rows}.created_at AT TIME ZONE 'Asia/Shanghai')::date)"

MARK_FUNCTIONS = {
    "console_mark_new_days": "SELECT DISTINCT county_id, " + LOCAL_DAY.format(rows="new_rows") + " FROM new_rows",
    "console_mark_old_days": "SELECT DISTINCT county_id, " + LOCAL_DAY.format(rows="old_rows") + " FROM old_rows",
    "console_mark_changed_days": ("SELECT county_id, " + LOCAL_DAY.format(rows="new_rows") + " FROM new_rows "
                                  "UNION SELECT county_id, " + LOCAL_DAY.format(rows="old_rows")
                                  + " FROM old_rows"),
}
TRIGGERS = (
    ("cases_mark_inserted_days", "INSERT", "NEW TABLE AS new_rows", "console_mark_new_days"),
    ("cases_mark_updated_days", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows",
     "console_mark_changed_days"),
    ("cases_mark_deleted_days", "DELETE", "OLD TABLE AS old_rows", "console_mark_old_days"),
)

BACKFILL_PG = """
UPDATE cases SET accepted_at = f.accepted_at, rating = f.rating, source = f.source
FROM (
  SELECT c.id,
         (SELECT min(e.at) FROM case_events e WHERE e.case_id = c.id AND e.action = 'accept') AS accepted_at,
         (SELECT r.value FROM ratings r WHERE r.case_id = c.id AND r.resident_id = c.resident_id
            AND r.value IN ('satisfied', 'basically_satisfied', 'unsatisfied')
          ORDER BY r.round DESC, r.id DESC LIMIT 1) AS rating,
         (SELECT e.detail ->> 'channel' FROM case_events e WHERE e.case_id = c.id AND e.action = 'submit'
          ORDER BY e.id LIMIT 1) AS source
  FROM cases c
) AS f
WHERE f.id = cases.id AND (f.accepted_at IS NOT NULL OR f.rating IS NOT NULL OR f.source IS NOT NULL)
"""
BACKFILL_SQLITE = """
UPDATE cases SET
  accepted_at = (SELECT min(e.at) FROM case_events e WHERE e.case_id = cases.id AND e.action = 'accept'),
  rating = (SELECT r.value FROM ratings r WHERE r.case_id = cases.id AND r.resident_id = cases.resident_id
              AND r.value IN ('satisfied', 'basically_satisfied', 'unsatisfied')
            ORDER BY r.round DESC, r.id DESC LIMIT 1),
  source = (SELECT json_extract(e.detail, '$.channel') FROM case_events e
            WHERE e.case_id = cases.id AND e.action = 'submit' ORDER BY e.id LIMIT 1)
"""

# liaison.case.service.resident_tag: sha256 of the resident's identity, hex digits 1-6.
TAGS_PG = """
UPDATE cases SET resident_tag = substr(encode(sha256(convert_to(
    coalesce(r.oa_openid, r.mp_openid, r.public_id), 'UTF8')), 'hex'), 1, 6)
FROM residents r WHERE r.id = cases.resident_id
"""


def _tags_in_python() -> None:
    import hashlib

    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT c.id, coalesce(r.oa_openid, r.mp_openid, r.public_id) FROM cases c "
                                "JOIN residents r ON r.id = c.resident_id")).all()
    for case_id, identity in rows:
        tag = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:6] if identity else None
        bind.execute(sa.text("UPDATE cases SET resident_tag = :tag WHERE id = :id"), {"tag": tag, "id": case_id})


def _county_owned(table: str, *columns) -> None:
    op.create_table(
        table,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        *columns,
        sa.Column("county_id", sa.Integer(), sa.ForeignKey("counties.id"), nullable=False,
                  server_default="1"),
    )
    op.create_index(f"ix_{table}_county_id", table, ["county_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {table} ALTER COLUMN county_id SET DEFAULT {WRITE_COUNTY_DEFAULT}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {POLICY} ON {table} USING {VISIBLE} WITH CHECK {VISIBLE}")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("SELECT set_config('liaison.all_counties', 'on', true)")  # every county's rows
    op.add_column("cases", sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("cases", sa.Column("rating", sa.String(24), nullable=True))
    op.add_column("cases", sa.Column("source", sa.String(24), nullable=True))
    op.add_column("cases", sa.Column("resident_tag", sa.String(10), nullable=True))
    op.create_index("ix_cases_grid_created", "cases", ["grid_id", "created_at", "id"], postgresql_include=["status", "county_id"])
    _county_owned(
        "console_daily_figures",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("grid_id", sa.Integer(), nullable=True),
        sa.Column("deputy_id", sa.Integer(), nullable=True),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("category", sa.String(32), nullable=True),
        sa.Column("source", sa.String(24), nullable=True),
        sa.Column("due_day", sa.Date(), nullable=True),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in COUNTERS],
    )
    op.create_index("ix_console_daily_figures_day", "console_daily_figures", ["county_id", "day"])
    _county_owned("console_stale_days", sa.Column("day", sa.Date(), nullable=False))
    if postgres:
        # A stale mark holds no personal data and only asks for a recount, so any writer of `cases`
        # may leave one, also city staff acting on a case handed up to them (migration 0019), whose
        # scope names no county and would fail `tenant_isolation`'s check inside the trigger.
        op.execute("CREATE POLICY stale_marks_from_any_writer ON console_stale_days FOR INSERT WITH CHECK (true)")
        for name, rows in MARK_FUNCTIONS.items():
            op.execute(f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO console_stale_days (county_id, day) {rows};
  RETURN NULL;
END $$""")
        for trigger, event, referencing, function in TRIGGERS:
            op.execute(f"CREATE TRIGGER {trigger} AFTER {event} ON cases REFERENCING {referencing} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()")
        op.execute(BACKFILL_PG)
        op.execute(TAGS_PG)
        # Every day with cases is counted by the first recount (the back-fill marked those it touched).
        op.execute("INSERT INTO console_stale_days (county_id, day) SELECT DISTINCT county_id, "
                   + LOCAL_DAY.format(rows="cases") + " FROM cases")
    else:
        op.execute(BACKFILL_SQLITE)
        _tags_in_python()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for trigger, _event, _referencing, _function in TRIGGERS:
            op.execute(f"DROP TRIGGER {trigger} ON cases")
        for name in MARK_FUNCTIONS:
            op.execute(f"DROP FUNCTION {name}()")
    op.drop_table("console_stale_days")
    op.drop_table("console_daily_figures")
    op.drop_index("ix_cases_grid_created", table_name="cases")
    op.drop_column("cases", "resident_tag")
    op.drop_column("cases", "source")
    op.drop_column("cases", "rating")
    op.drop_column("cases", "accepted_at")
