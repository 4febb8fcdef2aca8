"""source_seen: what listening sources produced, fingerprints for cross-source dedup

Revision ID: 0006
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.tables

revision: str = "0006"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "source_seen",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("url_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("text_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("author_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("verdict", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("seen_at", storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "external_id", name="uq_source_seen"),
    )
    with op.batch_alter_table("source_seen") as batch_op:
        batch_op.create_index("ix_source_seen_url_key", ["url_key"], unique=False)
        batch_op.create_index("ix_source_seen_text_key", ["text_key"], unique=False)


def downgrade() -> None:
    op.drop_table("source_seen")
