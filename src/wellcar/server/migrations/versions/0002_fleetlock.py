"""fleetlock groups and holders

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 10:12:41.503218
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fleetlock_group",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_fleetlock_group")),
    )
    op.create_table(
        "fleetlock_holder",
        sa.Column("group_name", sa.String(length=255), nullable=False),
        sa.Column("node_id", sa.String(length=255), nullable=False),
        sa.Column("acquired_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_name"],
            ["fleetlock_group.name"],
            name=op.f("fk_fleetlock_holder_group_name_fleetlock_group"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_name", "node_id", name=op.f("pk_fleetlock_holder")),
    )


def downgrade() -> None:
    op.drop_table("fleetlock_holder")
    op.drop_table("fleetlock_group")
