"""reference shards: one row per shard of an audit's reference-model work

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 14:15:00.000000

A shard trains and scores a contiguous block of the audit's reference models in a Celery task
of its own; its row is the claim, heartbeat and progress of that task (as `audits` is for the
audit), and its result lives in storage.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_shards",
        sa.Column("audit_id", sa.String(length=32), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("first", sa.Integer(), nullable=False),
        sa.Column("stop", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["audit_id"], ["audits.id"]),
        sa.PrimaryKeyConstraint("audit_id", "shard"),
    )


def downgrade() -> None:
    op.drop_table("audit_shards")
