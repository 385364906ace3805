"""package extra files (Nebraska's package_file)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 03:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "package_file",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("package_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("hash", sa.String(length=200), nullable=True),
        sa.Column("hash256", sa.String(length=200), nullable=True),
        sa.Column("created_ts", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["package.id"],
            name=op.f("fk_package_file_package_id_package"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_package_file")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_package_file_package", "package_file", ["package_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_package_file_package", table_name="package_file")
    op.drop_table("package_file")
