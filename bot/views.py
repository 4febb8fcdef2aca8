"""Plain view-models that rendering turns into Block Kit. No Slack, no SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class CardView:
    """Everything a mention card shows, in display-ready values."""

    mention_id: int
    source: str
    url: str | None
    author: str
    author_reach: int | None
    text: str
    lang: str | None
    category: str | None
    confidence: float | None
    method: str | None
    sentiment: str | None
    sentiment_score: float | None
    published_at: datetime | None
    ingested_at: datetime
    department_label: str | None
    triage: bool
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    moved_to_channel: str | None = None
    # Attention (priority issue): score 0-100, watch lists, SLA state, follow-up.
    priority: int | None = None
    watch_lists: tuple[str, ...] = ()
    customer_tier: str | None = None
    sla_status: str | None = None
    sla_due_at: datetime | None = None
    follow_up_of: int | None = None
