"""job_run: once-per-period claims for periodic jobs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.tables

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("fire_time", storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("started_at", storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_until", storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", storage.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job", "fire_time", name="uq_job_run_period"),
    )
    with op.batch_alter_table("job_run") as batch_op:
        batch_op.create_index("ix_job_run_job", ["job"], unique=False)


def downgrade() -> None:
    op.drop_table("job_run")
