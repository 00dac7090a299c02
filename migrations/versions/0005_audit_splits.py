"""audit splits: membership drawn by the service's coin

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-02 13:30:00.000000

The gate's `inconclusive` policy lives in the policies' `rules` JSON: no column needed.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_splits",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("dataset_id", sa.String(length=32), nullable=False),
        sa.Column("members_id", sa.String(length=32), nullable=False),
        sa.Column("non_members_id", sa.String(length=32), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("seed_source", sa.String(length=10), nullable=False),
        sa.Column("inclusion_probability", sa.Float(), nullable=False),
        sa.Column("n_candidates", sa.Integer(), nullable=False),
        sa.Column("n_members", sa.Integer(), nullable=False),
        sa.Column("n_non_members", sa.Integer(), nullable=False),
        sa.Column("member_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["artifacts.id"]),
        sa.ForeignKeyConstraint(["members_id"], ["artifacts.id"]),
        sa.ForeignKeyConstraint(["non_members_id"], ["artifacts.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_splits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_splits_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_splits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_splits_tenant_id"))
    op.drop_table("audit_splits")
