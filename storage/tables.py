"""SQLModel tables. All queries live in the repository modules beside this one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Dialect, Index, Text, TypeDecorator, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class MentionBase(SQLModel):
    source: str = Field(max_length=64)
    external_id: str = Field(max_length=255)
    url: str | None = Field(default=None, max_length=2048)
    author: str = Field(max_length=255)
    author_reach: int | None = None
    text: str = Field(sa_column=Column(Text, nullable=False))
    lang: str | None = Field(default=None, max_length=16)


class Mention(MentionBase, table=True):
    """One public mention of a brand. ``stage`` drives the durable pipeline:
    ``new`` (stored, not classified) -> ``routed`` (classified, card queued or not posted).
    """

    __tablename__ = "mention"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_mention_source_external_id"),
        Index("ix_mention_stage_id", "stage", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    published_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    ingested_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    stage: str = Field(default="new", max_length=16)
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    # Current classification and route, denormalised for queues and stats; the
    # history lives in ``classification``.
    category: str | None = Field(default=None, max_length=16, index=True)
    confidence: float | None = None
    sentiment: str | None = Field(default=None, max_length=16)
    sentiment_score: float | None = None
    department: str | None = Field(default=None, max_length=64)
    channel: str | None = Field(default=None, max_length=64)


class Classification(SQLModel, table=True):
    """Every classification a mention received, by a model, rules or a human."""

    __tablename__ = "classification"

    id: int | None = Field(default=None, primary_key=True)
    mention_id: int = Field(foreign_key="mention.id", index=True)
    category: str = Field(max_length=16)
    confidence: float
    method: str = Field(max_length=32)
    sentiment: str | None = Field(default=None, max_length=16)
    sentiment_score: float | None = None
    lang: str | None = Field(default=None, max_length=16)
    actor: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class SlackPost(SQLModel, table=True):
    """A card posted for a mention. A reclassified mention has a new current post."""

    __tablename__ = "slack_post"
    __table_args__ = (UniqueConstraint("mention_id", "channel", name="uq_post_mention_channel"),)

    id: int | None = Field(default=None, primary_key=True)
    mention_id: int = Field(foreign_key="mention.id", index=True)
    channel: str = Field(max_length=64)
    ts: str | None = Field(default=None, max_length=32)
    is_current: bool = True
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    posted_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class Engagement(SQLModel, table=True):
    """Who is working a mention and how it went."""

    __tablename__ = "engagement"

    mention_id: int = Field(foreign_key="mention.id", primary_key=True)
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    version: int = 0
    # Workflow milestones (migration 0004); durations are derived from these.
    first_claimed_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    first_response_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    responded_by: str | None = Field(default=None, max_length=64)
    escalated_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    escalated_by: str | None = Field(default=None, max_length=64)
    resolved_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    resolved_by: str | None = Field(default=None, max_length=64)


class AuditLog(SQLModel, table=True):
    """Append-only record of every state change."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    mention_id: int | None = Field(default=None, foreign_key="mention.id", index=True)
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class Outbox(SQLModel, table=True):
    """Durable queue of Slack Web API work, recorded before the call is made.

    ``kind`` is ``post_card`` (render the mention's card and post it to
    ``channel``) or ``update_card`` (re-render the current card in place). Cards
    are rendered at delivery time from the current state, so a queued update
    never shows stale data and several state changes coalesce.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    mention_id: int | None = Field(default=None, foreign_key="mention.id", index=True)
    post_id: int | None = Field(default=None, foreign_key="slack_post.id")
    channel: str = Field(max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    priority: int = 0
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    sent_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class SlackEvent(SQLModel, table=True):
    """Slack ``event_id``s already handled, so redelivered events are dropped."""

    __tablename__ = "slack_event"

    event_id: str = Field(primary_key=True, max_length=64)
    received_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class SourceState(SQLModel, table=True):
    """Durable cursor and health of one listening source and query."""

    __tablename__ = "source_state"
    __table_args__ = (UniqueConstraint("source", "query_key", name="uq_source_state"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=64)
    query_key: str = Field(max_length=255)
    cursor: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    last_success_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    last_error: str | None = Field(default=None, max_length=500)
    last_error_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    consecutive_failures: int = 0
    backoff_until: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    counters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class JobRun(SQLModel, table=True):
    """One run of a periodic job for one scheduled fire time.

    The unique (job, fire_time) key is how replicas agree that a period runs
    once: the replica whose insert succeeds runs it; a restart finds the row.
    """

    __tablename__ = "job_run"
    __table_args__ = (UniqueConstraint("job", "fire_time", name="uq_job_run_period"),)

    id: int | None = Field(default=None, primary_key=True)
    job: str = Field(max_length=64, index=True)
    fire_time: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    status: str = Field(default="running", max_length=16)
    owner: str = Field(max_length=64)
    started_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    lease_until: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    finished_at: datetime | None = Field(default=None,
                                         sa_column=Column(UTCDateTime(), nullable=True))
    error: str | None = Field(default=None, max_length=500)
