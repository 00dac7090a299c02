"""canary sets

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 17:45:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "canary_sets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("task", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("template", sa.Text(), nullable=True),
        sa.Column("alphabet", sa.String(length=100), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("repetitions", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=True),
        sa.Column("dataset_id", sa.String(length=32), nullable=True),
        sa.Column("canaries", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["artifacts.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("canary_sets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_canary_sets_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("canary_sets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_canary_sets_tenant_id"))
    op.drop_table("canary_sets")
