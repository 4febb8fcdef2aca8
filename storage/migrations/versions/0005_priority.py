"""priority, SLA state, authors, customers and watch lists

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.tables

revision: str = "0005"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

String = sqlmodel.sql.sqltypes.AutoString
When = storage.tables.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "author",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", String(length=64), nullable=False),
        sa.Column("handle", String(length=255), nullable=False),
        sa.Column("reach", sa.Integer(), nullable=True),
        sa.Column("reputation", sa.Float(), nullable=True),
        sa.Column("crm_checked_at", When(timezone=True), nullable=True),
        sa.Column("first_seen_at", When(timezone=True), nullable=False),
        sa.Column("last_seen_at", When(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "handle", name="uq_author_source_handle"),
    )
    op.create_table(
        "customer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_id", String(length=128), nullable=False),
        sa.Column("name", String(length=255), nullable=True),
        sa.Column("tier", String(length=32), nullable=True),
        sa.Column("origin", String(length=16), nullable=False),
        sa.Column("updated_at", When(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("external_id"),
    )
    op.create_table(
        "customer_handle",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("source", String(length=64), nullable=False),
        sa.Column("handle", String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "handle", name="uq_customer_handle"),
    )
    with op.batch_alter_table("customer_handle") as batch_op:
        batch_op.create_index("ix_customer_handle_customer_id", ["customer_id"], unique=False)
    op.create_table(
        "watch_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_name", String(length=32), nullable=False),
        sa.Column("source", String(length=64), nullable=False),
        sa.Column("handle", String(length=255), nullable=False),
        sa.Column("added_by", String(length=64), nullable=False),
        sa.Column("added_at", When(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("list_name", "source", "handle", name="uq_watch_entry"),
    )
    with op.batch_alter_table("watch_entry") as batch_op:
        batch_op.create_index("ix_watch_entry_list_name", ["list_name"], unique=False)
        batch_op.create_index("ix_watch_entry_handle", ["handle"], unique=False)
    op.create_table(
        "mention_attention",
        sa.Column("mention_id", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("factors", sa.JSON(), nullable=False),
        sa.Column("watch_lists", sa.JSON(), nullable=False),
        sa.Column("tier", String(length=32), nullable=True),
        sa.Column("entitled", sa.Boolean(), nullable=False),
        sa.Column("sla_minutes", sa.Integer(), nullable=True),
        sa.Column("sla_started_at", When(timezone=True), nullable=False),
        sa.Column("warn_at", When(timezone=True), nullable=True),
        sa.Column("due_at", When(timezone=True), nullable=True),
        sa.Column("answered_at", When(timezone=True), nullable=True),
        sa.Column("warned_at", When(timezone=True), nullable=True),
        sa.Column("breached_at", When(timezone=True), nullable=True),
        sa.Column("alerted_at", When(timezone=True), nullable=True),
        sa.Column("escalated_at", When(timezone=True), nullable=True),
        sa.Column("follow_up_of", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["mention_id"], ["mention.id"]),
        sa.ForeignKeyConstraint(["follow_up_of"], ["mention.id"]),
        sa.PrimaryKeyConstraint("mention_id"),
    )
    with op.batch_alter_table("mention_attention") as batch_op:
        batch_op.create_index("ix_attention_priority", ["priority"], unique=False)
        batch_op.create_index("ix_attention_open_due", ["answered_at", "due_at"], unique=False)


def downgrade() -> None:
    op.drop_table("mention_attention")
    op.drop_table("watch_entry")
    op.drop_table("customer_handle")
    op.drop_table("customer")
    op.drop_table("author")
