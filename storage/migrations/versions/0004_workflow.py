"""workflow: engagement milestones, replies, escalations, reviews, dispatch queue,
conversions, internal notes, flags, training feedback

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.tables

revision: str = "0004"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = sqlmodel.sql.sqltypes.AutoString


def _dt(name: str, nullable: bool) -> sa.Column[datetime]:
    return sa.Column(name, storage.tables.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("engagement") as batch_op:
        batch_op.add_column(_dt("first_claimed_at", True))
        batch_op.add_column(_dt("first_response_at", True))
        batch_op.add_column(sa.Column("responded_by", S(length=64), nullable=True))
        batch_op.add_column(_dt("escalated_at", True))
        batch_op.add_column(sa.Column("escalated_by", S(length=64), nullable=True))
        batch_op.add_column(_dt("resolved_at", True))
        batch_op.add_column(sa.Column("resolved_by", S(length=64), nullable=True))

    op.create_table(
        "reply",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mention_id", sa.Integer(), nullable=False),
        sa.Column("author", S(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", S(length=16), nullable=False),
        sa.Column("external_id", S(length=255), nullable=True),
        _dt("created_at", False),
        _dt("done_at", True),
        sa.ForeignKeyConstraint(["mention_id"], ["mention.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_reply_mention_id", "reply", ["mention_id"])

    op.create_table(
        "escalation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mention_id", sa.Integer(), nullable=False),
        sa.Column("escalated_by", S(length=64), nullable=False),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.Column("severity", S(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("context", sa.Text(), nullable=True),
        sa.Column("case_id", S(length=255), nullable=True),
        sa.Column("crm_status", S(length=16), nullable=False),
        _dt("created_at", False),
        sa.ForeignKeyConstraint(["mention_id"], ["mention.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_escalation_mention_id", "escalation", ["mention_id"])

    op.create_table(
        "after_action_review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("escalation_id", sa.Integer(), nullable=False),
        sa.Column("mention_id", sa.Integer(), nullable=False),
        sa.Column("reviewer", S(length=64), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("without_intervention", sa.Text(), nullable=False),
        sa.Column("could_be_better", sa.Text(), nullable=True),
        sa.Column("appropriate", sa.Boolean(), nullable=False),
        _dt("created_at", False),
        sa.ForeignKeyConstraint(["escalation_id"], ["escalation.id"]),
        sa.ForeignKeyConstraint(["mention_id"], ["mention.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("escalation_id"),
    )
    op.create_index("ix_after_action_review_mention_id", "after_action_review", ["mention_id"])

    op.create_table(
        "dispatch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", S(length=32), nullable=False),
        sa.Column("mention_id", sa.Integer(), nullable=True),
        sa.Column("ref_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", S(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _dt("next_attempt_at", False),
        sa.Column("lease_owner", S(length=64), nullable=True),
        _dt("lease_until", True),
        sa.Column("last_error", S(length=500), nullable=True),
        _dt("created_at", False),
        _dt("sent_at", True),
        sa.ForeignKeyConstraint(["mention_id"], ["mention.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dispatch_due", "dispatch", ["status", "next_attempt_at"])
    op.create_index("ix_dispatch_mention_id", "dispatch", ["mention_id"])

    op.create_table(
        "conversion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mention_id", sa.Integer(), nullable=False),
        sa.Column("before", S(length=16), nullable=False),
        sa.Column("after", S(length=16), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("agent", S(length=64), nullable=False),
        sa.Column("department", S(length=64), nullable=True),
        sa.Column("tagged_by", S(length=64), nullable=False),
        _dt("tagged_at", False),
        sa.ForeignKeyConstraint(["mention_id"], ["mention.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mention_id"),
    )
    op.create_index("ix_conversion_agent", "conversion", ["agent"])

    op.create_table(
        "internal_note",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mention_id", sa.Integer(), nullable=False),
        sa.Column("author", S(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("kind", S(length=16), nullable=False),
        sa.Column("channel", S(length=64), nullable=True),
        sa.Column("ts", S(length=32), nullable=True),
        _dt("created_at", False),
        sa.ForeignKeyConstraint(["mention_id"], ["mention.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "ts", name="uq_internal_note_message"),
    )
    op.create_index("ix_internal_note_mention_id", "internal_note", ["mention_id"])

    op.create_table(
        "mention_flag",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mention_id", sa.Integer(), nullable=False),
        sa.Column("flag", S(length=16), nullable=False),
        sa.Column("actor", S(length=64), nullable=False),
        _dt("created_at", False),
        sa.ForeignKeyConstraint(["mention_id"], ["mention.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mention_id", "flag", name="uq_mention_flag"),
    )
    op.create_index("ix_mention_flag_mention_id", "mention_flag", ["mention_id"])

    op.create_table(
        "training_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mention_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("lang", S(length=16), nullable=True),
        sa.Column("predicted", S(length=16), nullable=True),
        sa.Column("category", S(length=16), nullable=False),
        sa.Column("actor", S(length=64), nullable=False),
        _dt("created_at", False),
        sa.ForeignKeyConstraint(["mention_id"], ["mention.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_training_feedback_mention_id", "training_feedback", ["mention_id"])


def downgrade() -> None:
    for table in ("training_feedback", "mention_flag", "internal_note", "conversion",
                  "dispatch", "after_action_review", "escalation", "reply"):
        op.drop_table(table)
    with op.batch_alter_table("engagement") as batch_op:
        for column in ("resolved_by", "resolved_at", "escalated_by", "escalated_at",
                       "responded_by", "first_response_at", "first_claimed_at"):
            batch_op.drop_column(column)
