"""stats: digest_log (once per period and target) and spike_state (alert cooldowns)

Revision ID: 0007
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.tables

revision: str = "0007"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

String = sqlmodel.sql.sqltypes.AutoString
When = storage.tables.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "digest_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", String(length=32), nullable=False),
        sa.Column("period", String(length=64), nullable=False),
        sa.Column("target", String(length=64), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("created_at", When(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "period", "target", name="uq_digest_log"),
    )
    op.create_table(
        "spike_state",
        sa.Column("key", String(length=255), nullable=False),
        sa.Column("last_hot_at", When(timezone=True), nullable=False),
        sa.Column("last_alert_at", When(timezone=True), nullable=True),
        sa.Column("alerts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("spike_state")
    op.drop_table("digest_log")
