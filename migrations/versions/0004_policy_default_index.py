"""one default policy per tenant

The unique index was first added by editing 0003 after it had landed, so a database migrated
with the original 0003 never got it; a database migrated with the edited 0003 already has it,
hence IF NOT EXISTS.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 13:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    duplicated = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT tenant_id FROM policies WHERE model_name IS NULL "
                "GROUP BY tenant_id HAVING COUNT(*) > 1"
            )
        )
        .scalars()
        .all()
    )
    if duplicated:
        raise RuntimeError(
            "tenants with more than one default policy (keep one, delete the others, then "
            f"upgrade again): {', '.join(sorted(duplicated))}"
        )
    op.create_index(
        "uq_policies_tenant_default",
        "policies",
        ["tenant_id"],
        unique=True,
        postgresql_where=sa.text("model_name IS NULL"),
        sqlite_where=sa.text("model_name IS NULL"),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index("uq_policies_tenant_default", table_name="policies", if_exists=True)
