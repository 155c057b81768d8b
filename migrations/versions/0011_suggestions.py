"""代表建议 and 民生实事: 问题清单 entries, suggestions with their deputies, cases, departments, timeline and
双满意 ratings; project proposals (征集), chosen projects with milestones, timeline and ratings; a vote's
electorate and each candidate's votes and 入选 on closing

Every table is county-owned: `county_id` NOT NULL (default: the write county on PostgreSQL) and the
row-level-security policy of migration 0006.

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TABLES = ("problem_entries", "problem_entry_cases", "suggestions", "suggestion_cases", "suggestion_departments",
          "suggestion_deputies", "suggestion_events", "suggestion_ratings", "project_proposals",
          "livelihood_projects", "project_events", "project_milestones", "project_ratings")
POLICY = "tenant_isolation"
VISIBLE = ("(current_setting('liaison.all_counties', true) = 'on' OR county_id = ANY ("
           "string_to_array(NULLIF(current_setting('liaison.county_ids', true), ''), ',')::integer[]))")
WRITE_COUNTY_DEFAULT = "NULLIF(current_setting('liaison.county_id', true), '')::integer"


def _county():
    postgres = op.get_bind().dialect.name == "postgresql"
    return sa.Column("county_id", sa.Integer(), nullable=False,
                     server_default=sa.text(WRITE_COUNTY_DEFAULT) if postgres else sa.text("1"))


def _secure() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {POLICY} ON {table} USING {VISIBLE} WITH CHECK {VISIBLE}")



def upgrade() -> None:
    op.create_table('problem_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=24), nullable=False),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=True),
    sa.Column('grid_id', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    _county(),
    sa.ForeignKeyConstraint(['county_id'], ['counties.id'], ),
    sa.ForeignKeyConstraint(['created_by'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['grid_id'], ['grids.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('public_id')
    )
    with op.batch_alter_table('problem_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_problem_entries_county_id'), ['county_id'], unique=False)

    op.create_table('problem_entry_cases',
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    _county(),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], ),
    sa.ForeignKeyConstraint(['county_id'], ['counties.id'], ),
    sa.ForeignKeyConstraint(['entry_id'], ['problem_entries.id'], ),
    sa.PrimaryKeyConstraint('entry_id', 'case_id')
    )
    with op.batch_alter_table('problem_entry_cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_problem_entry_cases_county_id'), ['county_id'], unique=False)

    op.create_table('suggestions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=24), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=True),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('problems', sa.Text(), nullable=False),
    sa.Column('proposals', sa.Text(), nullable=False),
    sa.Column('lead_deputy_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('review_step', sa.Integer(), nullable=False),
    sa.Column('nature', sa.String(length=12), nullable=False),
    sa.Column('key_supervision', sa.Boolean(), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=True),
    sa.Column('extended', sa.Boolean(), nullable=False),
    sa.Column('answer_category', sa.String(length=1), nullable=True),
    sa.Column('answer_text', sa.Text(), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('plan_completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_action_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reminded_for', sa.DateTime(timezone=True), nullable=True),
    sa.Column('escalation_level', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    _county(),
    sa.ForeignKeyConstraint(['county_id'], ['counties.id'], ),
    sa.ForeignKeyConstraint(['entry_id'], ['problem_entries.id'], ),
    sa.ForeignKeyConstraint(['lead_deputy_id'], ['deputies.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('county_id', 'number'),
    sa.UniqueConstraint('public_id')
    )
    with op.batch_alter_table('suggestions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_suggestions_county_id'), ['county_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_suggestions_lead_deputy_id'), ['lead_deputy_id'], unique=False)
        batch_op.create_index('ix_suggestions_next_action_at', ['next_action_at'], unique=False, postgresql_where=sa.text('next_action_at IS NOT NULL'))
        batch_op.create_index(batch_op.f('ix_suggestions_status'), ['status'], unique=False)

    op.create_table('suggestion_cases',
    sa.Column('suggestion_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    _county(),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], ),
    sa.ForeignKeyConstraint(['county_id'], ['counties.id'], ),
    sa.ForeignKeyConstraint(['suggestion_id'], ['suggestions.id'], ),
    sa.PrimaryKeyConstraint('suggestion_id', 'case_id')
    )
    with op.batch_alter_table('suggestion_cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_suggestion_cases_county_id'), ['county_id'], unique=False)

    op.create_table('suggestion_departments',
    sa.Column('suggestion_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=8), nullable=False),
    _county(),
    sa.ForeignKeyConstraint(['county_id'], ['counties.id'], ),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], ),
    sa.ForeignKeyConstraint(['suggestion_id'], ['suggestions.id'], ),
    sa.PrimaryKeyConstraint('suggestion_id', 'department_id')
    )
    with op.batch_alter_table('suggestion_departments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_suggestion_departments_county_id'), ['county_id'], unique=False)

    op.create_table('suggestion_deputies',
    sa.Column('suggestion_id', sa.Integer(), nullable=False),
    sa.Column('deputy_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=8), nullable=False),
    _county(),
    sa.ForeignKeyConstraint(['county_id'], ['counties.id'], ),
    sa.ForeignKeyConstraint(['deputy_id'], ['deputies.id'], ),
    sa.ForeignKeyConstraint(['suggestion_id'], ['suggestions.id'], ),
    sa.PrimaryKeyConstraint('suggestion_id', 'deputy_id')
    )
    with op.batch_alter_table('suggestion_deputies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_suggestion_deputies_county_id'), ['county_id'], unique=False)

    op.create_table('suggestion_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('suggestion_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_kind', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    _county(),
    sa.ForeignKeyConstraint(['county_id'], ['counties.id'], ),
    sa.ForeignKeyConstraint(['suggestion_id'], ['suggestions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('suggestion_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_suggestion_events_county_id'), ['county_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_suggestion_events_suggestion_id'), ['suggestion_id'], unique=False)

    op.create_table('suggestion_ratings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('suggestion_id', sa.Integer(), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('rater', sa.String(length=24), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('value', sa.String(length=24), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    _county(),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['county_id'], ['counties.id'], ),
    sa.ForeignKeyConstraint(['suggestion_id'], ['suggestions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('suggestion_id', 'round', 'rater')
    )
    with op.batch_alter_table('suggestion_ratings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_suggestion_ratings_county_id'), ['county_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_suggestion_ratings_suggestion_id'), ['suggestion_id'], unique=False)
    op.create_table('project_proposals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=24), nullable=False),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('source_kind', sa.String(length=16), nullable=False),
    sa.Column('resident_id', sa.Integer(), nullable=True),
    sa.Column('deputy_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    _county(),
    sa.ForeignKeyConstraint(['county_id'], ['counties.id'], ),
    sa.ForeignKeyConstraint(['deputy_id'], ['deputies.id'], ),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('public_id')
    )
    with op.batch_alter_table('project_proposals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_project_proposals_county_id'), ['county_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_project_proposals_status'), ['status'], unique=False)

    op.create_table('livelihood_projects',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=24), nullable=False),
    sa.Column('candidate_id', sa.Integer(), nullable=True),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('lead_department_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('color', sa.String(length=8), nullable=False),
    sa.Column('next_action_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    _county(),
    sa.ForeignKeyConstraint(['candidate_id'], ['project_candidates.id'], ),
    sa.ForeignKeyConstraint(['county_id'], ['counties.id'], ),
    sa.ForeignKeyConstraint(['lead_department_id'], ['departments.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('candidate_id'),
    sa.UniqueConstraint('public_id')
    )
    with op.batch_alter_table('livelihood_projects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_livelihood_projects_county_id'), ['county_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_livelihood_projects_lead_department_id'), ['lead_department_id'], unique=False)
        batch_op.create_index('ix_livelihood_projects_next_action_at', ['next_action_at'], unique=False, postgresql_where=sa.text('next_action_at IS NOT NULL'))

    op.create_table('project_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_kind', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    _county(),
    sa.ForeignKeyConstraint(['county_id'], ['counties.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['livelihood_projects.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('project_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_project_events_county_id'), ['county_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_project_events_project_id'), ['project_id'], unique=False)

    op.create_table('project_milestones',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=24), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    _county(),
    sa.ForeignKeyConstraint(['county_id'], ['counties.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['livelihood_projects.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('public_id')
    )
    with op.batch_alter_table('project_milestones', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_project_milestones_county_id'), ['county_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_project_milestones_project_id'), ['project_id'], unique=False)

    op.create_table('project_ratings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('rater', sa.String(length=24), nullable=False),
    sa.Column('rater_kind', sa.String(length=16), nullable=False),
    sa.Column('value', sa.String(length=24), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    _county(),
    sa.ForeignKeyConstraint(['county_id'], ['counties.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['livelihood_projects.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'rater')
    )
    with op.batch_alter_table('project_ratings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_project_ratings_county_id'), ['county_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_project_ratings_project_id'), ['project_id'], unique=False)

    with op.batch_alter_table('project_candidates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('votes', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('chosen', sa.Boolean(), nullable=True))

    with op.batch_alter_table('project_votes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('electorate', sa.Integer(), nullable=True))

    _secure()


def downgrade() -> None:
    with op.batch_alter_table('project_votes', schema=None) as batch_op:
        batch_op.drop_column('electorate')

    with op.batch_alter_table('project_candidates', schema=None) as batch_op:
        batch_op.drop_column('chosen')
        batch_op.drop_column('votes')

    with op.batch_alter_table('project_ratings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_project_ratings_project_id'))
        batch_op.drop_index(batch_op.f('ix_project_ratings_county_id'))

    op.drop_table('project_ratings')
    with op.batch_alter_table('project_milestones', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_project_milestones_project_id'))
        batch_op.drop_index(batch_op.f('ix_project_milestones_county_id'))

    op.drop_table('project_milestones')
    with op.batch_alter_table('project_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_project_events_project_id'))
        batch_op.drop_index(batch_op.f('ix_project_events_county_id'))

    op.drop_table('project_events')
    with op.batch_alter_table('livelihood_projects', schema=None) as batch_op:
        batch_op.drop_index('ix_livelihood_projects_next_action_at', postgresql_where=sa.text('next_action_at IS NOT NULL'))
        batch_op.drop_index(batch_op.f('ix_livelihood_projects_lead_department_id'))
        batch_op.drop_index(batch_op.f('ix_livelihood_projects_county_id'))

    op.drop_table('livelihood_projects')
    with op.batch_alter_table('project_proposals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_project_proposals_status'))
        batch_op.drop_index(batch_op.f('ix_project_proposals_county_id'))

    op.drop_table('project_proposals')

    with op.batch_alter_table('suggestion_ratings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suggestion_ratings_suggestion_id'))
        batch_op.drop_index(batch_op.f('ix_suggestion_ratings_county_id'))

    op.drop_table('suggestion_ratings')
    with op.batch_alter_table('suggestion_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suggestion_events_suggestion_id'))
        batch_op.drop_index(batch_op.f('ix_suggestion_events_county_id'))

    op.drop_table('suggestion_events')
    with op.batch_alter_table('suggestion_deputies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suggestion_deputies_county_id'))

    op.drop_table('suggestion_deputies')
    with op.batch_alter_table('suggestion_departments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suggestion_departments_county_id'))

    op.drop_table('suggestion_departments')
    with op.batch_alter_table('suggestion_cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suggestion_cases_county_id'))

    op.drop_table('suggestion_cases')
    with op.batch_alter_table('suggestions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suggestions_status'))
        batch_op.drop_index('ix_suggestions_next_action_at', postgresql_where=sa.text('next_action_at IS NOT NULL'))
        batch_op.drop_index(batch_op.f('ix_suggestions_lead_deputy_id'))
        batch_op.drop_index(batch_op.f('ix_suggestions_county_id'))

    op.drop_table('suggestions')
    with op.batch_alter_table('problem_entry_cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_problem_entry_cases_county_id'))

    op.drop_table('problem_entry_cases')
    with op.batch_alter_table('problem_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_problem_entries_county_id'))

    op.drop_table('problem_entries')
