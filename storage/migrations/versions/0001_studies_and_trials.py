"""Studies and trials; finished trials refused any UPDATE by a trigger.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

FINISHED = "('complete', 'failed', 'pruned')"


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("spec_version", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("stop_reason", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("samples_spent", sa.BigInteger, nullable=False),
        sa.Column("passes_spent", sa.Float, nullable=False),
        sa.Column("n_trials", sa.Integer, nullable=False),
        sa.Column("n_told", sa.Integer, nullable=False),
        sa.Column("n_running", sa.Integer, nullable=False),
        sa.Column("n_complete", sa.Integer, nullable=False),
        sa.Column("n_failed", sa.Integer, nullable=False),
        sa.Column("n_pruned", sa.Integer, nullable=False),
        sa.Column("yardstick", sa.JSON, nullable=True),
        sa.Column("best_number", sa.Integer, nullable=True),
        sa.Column("coordinator", sa.String(200), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
    )
    op.create_index("ix_studies_state", "studies", ["state"])
    op.create_table(
        "trials",
        sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("n_samples", sa.Integer, nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("fail_reason", sa.Text, nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("passes", sa.Float, nullable=False),
        sa.Column("tell_seq", sa.Integer, nullable=True),
        sa.Column("best_score", sa.Float, nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_trials_best", "trials", ["study_id", "state", "score"])
    op.create_index("ix_trials_tell", "trials", ["study_id", "tell_seq"])
    # A finished trial is immutable in the database itself, whoever writes to it.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION guidetune_refuse_finished_trial_update() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'guidetune: trial % of study % is finished (%) and can no longer change',
                    OLD.number, OLD.study_id, OLD.state USING ERRCODE = 'integrity_constraint_violation';
            END $$ LANGUAGE plpgsql""")
        op.execute(f"""
            CREATE TRIGGER trials_finished_immutable BEFORE UPDATE ON trials
            FOR EACH ROW WHEN (OLD.state IN {FINISHED})
            EXECUTE FUNCTION guidetune_refuse_finished_trial_update()""")
    else:
        op.execute(f"""
            CREATE TRIGGER trials_finished_immutable BEFORE UPDATE ON trials
            WHEN OLD.state IN {FINISHED}
            BEGIN SELECT RAISE(ABORT, 'guidetune: trial is finished and can no longer change'); END""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS trials_finished_immutable ON trials")
        op.execute("DROP FUNCTION IF EXISTS guidetune_refuse_finished_trial_update()")
    op.drop_table("trials")
    op.drop_table("studies")
