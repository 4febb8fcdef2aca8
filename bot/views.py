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
    workflow: WorkflowState | None = None
    # Attention (priority issue): score 0-100, watch lists, SLA state, follow-up.
    priority: int | None = None
    watch_lists: tuple[str, ...] = ()
    customer_tier: str | None = None
    sla_status: str | None = None
    sla_due_at: datetime | None = None
    follow_up_of: int | None = None


@dataclass(frozen=True, slots=True)
class WorkflowState:
    """Where a mention stands in the engagement workflow, for the card.

    ``status`` is the card variant: ``new``, ``claimed``, ``responded``,
    ``escalated``, ``resolved`` or ``noise``.
    """

    status: str = "new"
    responded_by: str | None = None
    first_response_at: datetime | None = None
    #: Latest reply: its text and status (draft / queued / sent / confirmed / failed).
    reply_text: str | None = None
    reply_status: str | None = None
    reply_author: str | None = None
    escalated_by: str | None = None
    escalated_at: datetime | None = None
    severity: str | None = None
    case_id: str | None = None
    crm_status: str | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    reclassified_by: str | None = None
    conversion_before: str | None = None
    conversion_after: str | None = None
    conversion_score: int | None = None
    conversion_by: str | None = None
    starred_by: str | None = None
    kb_by: str | None = None
    notes: int = 0


@dataclass(frozen=True, slots=True)
class EscalationPostView:
    """The Social 911 post in the escalation channel."""

    mention_id: int
    escalation_id: int
    severity: str
    severity_label: str
    reason: str
    context: str | None
    escalated_by: str
    automatic: bool
    user_group: str | None
    source: str
    author: str
    text: str
    url: str | None
    card_channel: str | None


@dataclass(frozen=True, slots=True)
class ReviewRequestView:
    """The DM that asks the escalator for an after-action review."""

    mention_id: int
    escalation_id: int
    severity_label: str
    author: str
    text: str
    resolved_by: str


@dataclass(frozen=True, slots=True)
class ModalContext:
    """What the card's modals prefill and explain."""

    mention_id: int
    source: str
    url: str | None
    author: str
    text: str
    category: str | None
    sentiment: str | None
    reply_capable: bool
    draft: str | None
