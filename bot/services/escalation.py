"""Social 911: escalation, the CRM case, and the after-action review.

Escalating records the escalation, posts to the escalation channel pinging the
configured user group (through the Slack outbox) and queues the CRM case
webhook (through the dispatch queue) — all in one transaction, so nothing is
sent before it is recorded and nothing recorded is lost. The case id comes
back onto the card when the CRM answers. Resolving an escalated mention asks
the escalator, by DM, for an after-action review.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any, Protocol

from bot.errors import InvalidInput, NotAllowed, NotFound
from bot.services.permissions import Permission
from bot.views import CardView, EscalationPostView, ReviewRequestView
from storage import audit, engagements, outbox
from storage import escalations as esc_store
from storage import workflow as store
from storage.db import Session, retry_conflicts, session_scope
from storage.workflow_tables import Escalation

if TYPE_CHECKING:
    from datetime import datetime

    from bot.services.workflow import Workflow
    from storage.tables import Mention

SEVERITIES: dict[str, str] = {
    "sev1": "SEV1 — critical",
    "sev2": "SEV2 — high",
    "sev3": "SEV3 — moderate",
}
MAX_TEXT = 2000

REVIEW_COLUMNS = (
    "escalation_id", "mention_id", "severity", "escalated_by", "automatic", "escalated_at",
    "case_id", "reviewer", "reviewed_at", "outcome", "without_intervention",
    "could_be_better", "appropriate",
)


class WorkflowMessages(Protocol):
    """Renders the workflow's Slack messages (``chat.postMessage`` arguments, no channel)."""

    def escalation_post(self, view: EscalationPostView) -> dict[str, Any]: ...

    def review_request(self, view: ReviewRequestView) -> dict[str, Any]: ...


class PlainMessages:
    """Text-only messages, used until the Slack layer installs its Block Kit renderer."""

    def escalation_post(self, view: EscalationPostView) -> dict[str, Any]:
        ping = f"<!subteam^{view.user_group}> " if view.user_group else ""
        return {"text": f"{ping}:rotating_light: Social 911 ({view.severity_label}) by "
                        f"<@{view.escalated_by}>: {view.reason}"}

    def review_request(self, view: ReviewRequestView) -> dict[str, Any]:
        return {"text": f"The escalation of @{view.author}'s mention was resolved. "
                        "Please write an after-action review."}


class Escalations:
    """Escalation use cases; reached as ``services.workflow.escalations``."""

    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow
        self.messages: WorkflowMessages = PlainMessages()

    @property
    def config(self) -> Any:
        return self.workflow.services.config.workflow.escalation

    @retry_conflicts()
    def escalate(self, *, mention_id: int, user: str, severity: str, reason: str,
                 context: str | None = None, automatic: bool = False) -> CardView:
        """Escalate a mention (Social 911).

        Args:
            mention_id: the mention.
            user: who escalates (``"carebot"`` for an automatic escalation).
            severity: ``sev1``, ``sev2`` or ``sev3``.
            reason: why, shown in the escalation post and sent to the CRM.
            context: what we know about the customer.
            automatic: escalated by rules (no permission check).

        Raises:
            NotAllowed: no escalate permission, already escalated, or resolved.
            InvalidInput: unknown severity or an empty reason.
        """
        if severity not in SEVERITIES:
            raise InvalidInput(f"Unknown severity {severity!r}.")
        reason = reason.strip()[:MAX_TEXT]
        context = (context or "").strip()[:MAX_TEXT] or None
        if not reason:
            raise InvalidInput("Say why this needs escalating.")
        if not automatic:
            self.workflow.require(user, Permission.ESCALATE)
        wf = self.workflow
        now = wf.now()
        crm = self.config.crm_webhook_url is not None
        with session_scope(wf.services.engine) as session:
            mention = wf.mention(session, mention_id)
            if not store.try_escalate(session=session, mention_id=mention_id, user=user,
                                      now=now):
                eng = engagements.get(session=session, mention_id=mention_id)
                by = eng.escalated_by if eng else None
                already = f"Already escalated by <@{by}>." if by else "Already escalated."
                if eng is not None and eng.escalated_at is not None:
                    # Reopening does not undo an escalation: don't advise it.
                    raise NotAllowed(already)
                if eng is not None and eng.resolved_at is not None:
                    raise NotAllowed("This mention is resolved; reopen it to escalate it.")
                raise NotAllowed(already)
            row = esc_store.add_escalation(session=session, mention_id=mention_id,
                                           escalated_by=user, severity=severity, reason=reason,
                                           context=context, automatic=automatic,
                                           crm_status="pending" if crm else "none", now=now)
            current = outbox.current_post(session=session, mention_id=mention_id)
            if self.config.channel:
                view = EscalationPostView(
                    mention_id=mention_id, escalation_id=row.id or 0, severity=severity,
                    severity_label=SEVERITIES[severity], reason=reason, context=context,
                    escalated_by=user, automatic=automatic, user_group=self.config.user_group,
                    source=mention.source, author=mention.author, text=mention.text,
                    url=mention.url, card_channel=current.channel if current else None)
                outbox.enqueue_message(session=session, channel=self.config.channel, now=now,
                                       priority=9, mention_id=mention_id,
                                       payload={"channel": self.config.channel,
                                                **self.messages.escalation_post(view)})
            if crm:
                esc_store.enqueue(session=session, kind=esc_store.CRM_CASE, now=now,
                                  mention_id=mention_id, ref_id=row.id,
                                  payload=case_payload(mention, row, current))
            card = wf.changed(session, mention_id, actor=user, action="escalated", now=now,
                              detail={"severity": severity, "automatic": automatic,
                                      "escalation_id": row.id})
        wf.notify("outbox", "dispatch")
        return card

    def case_created(self, session: Session, *, escalation_id: int, case_id: str | None,
                     now: datetime) -> None:
        """The CRM opened the case: its id goes onto the card (the card says the case
        was opened when the CRM gave no usable id)."""
        row = esc_store.get_escalation(session=session, escalation_id=escalation_id)
        if row is None:
            return
        # One line of printable text; a blank id is no id (not an empty code span).
        case_id = "".join(c for c in (case_id or "") if c.isprintable()).strip() or None
        esc_store.set_case(session=session, escalation_id=escalation_id, case_id=case_id,
                           status="created")
        self.workflow.changed(session, row.mention_id, actor="carebot", now=now,
                              action="crm_case_created", detail={"case_id": case_id})

    def case_failed(self, session: Session, *, escalation_id: int, error: str,
                    now: datetime) -> None:
        """The CRM kept refusing; the request is parked (kept for ``dispatch requeue``)."""
        row = esc_store.get_escalation(session=session, escalation_id=escalation_id)
        if row is None:
            return
        esc_store.set_case(session=session, escalation_id=escalation_id, case_id=None,
                           status="parked")
        self.workflow.changed(session, row.mention_id, actor="carebot", now=now,
                              action="crm_case_parked", detail={"error": error})

    # -- after-action review -------------------------------------------------------

    def ask_for_review(self, session: Session, *, mention_id: int, resolver: str,
                       now: datetime) -> None:
        """DM the escalator (the resolver, for an automatic escalation) for a review.

        An escalation already reviewed (resolved again after a reopen) is not asked again.
        """
        row = esc_store.latest_escalation(session=session, mention_id=mention_id)
        if row is None or esc_store.review_for(session=session,
                                               escalation_id=row.id or 0) is not None:
            return
        mention = self.workflow.mention(session, mention_id)
        recipient = resolver if row.automatic else row.escalated_by
        view = ReviewRequestView(mention_id=mention_id, escalation_id=row.id or 0,
                                 severity_label=SEVERITIES.get(row.severity, row.severity),
                                 author=mention.author, text=mention.text, resolved_by=resolver)
        outbox.enqueue_message(session=session, channel=recipient, now=now, priority=5,
                               mention_id=mention_id,
                               payload={"channel": recipient,
                                        **self.messages.review_request(view)})
        audit.record(session=session, actor="carebot", action="review_requested",
                     mention_id=mention_id, now=now,
                     detail={"escalation_id": row.id, "reviewer": recipient})

    @retry_conflicts()
    def record_review(self, *, escalation_id: int, user: str, outcome: str,
                      without_intervention: str, could_be_better: str | None,
                      appropriate: bool) -> None:
        """Store the after-action review of an escalation.

        Raises:
            NotFound: no such escalation.
            NotAllowed: ``user`` is neither the escalator, the resolver nor an admin.
            InvalidInput: outcome or the counterfactual is empty.
        """
        outcome, without_intervention = outcome.strip(), without_intervention.strip()
        if not outcome or not without_intervention:
            raise InvalidInput("Outcome and what would have happened are both needed.")
        wf = self.workflow
        now = wf.now()
        with session_scope(wf.services.engine) as session:
            row = esc_store.get_escalation(session=session, escalation_id=escalation_id)
            if row is None:
                raise NotFound(f"Escalation {escalation_id} does not exist.")
            eng = engagements.get(session=session, mention_id=row.mention_id)
            reviewers = {row.escalated_by, eng.resolved_by if eng else None}
            if user not in reviewers and not wf.permissions.allowed(user, Permission.ADMIN):
                raise NotAllowed("Only the escalator or the resolver can review this "
                                 "escalation.")
            esc_store.save_review(session=session, escalation=row, reviewer=user,
                                  outcome=outcome[:MAX_TEXT],
                                  without_intervention=without_intervention[:MAX_TEXT],
                                  could_be_better=(could_be_better or "").strip()[:MAX_TEXT]
                                  or None,
                                  appropriate=appropriate, now=now)
            audit.record(session=session, actor=user, action="review_recorded",
                         mention_id=row.mention_id, now=now,
                         detail={"escalation_id": escalation_id, "appropriate": appropriate})

    def export_reviews_csv(self) -> str:
        """Every after-action review as CSV (header row first)."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(REVIEW_COLUMNS)
        with session_scope(self.workflow.services.engine) as session:
            for review, row in esc_store.reviews(session=session):
                writer.writerow([
                    row.id, row.mention_id, row.severity, row.escalated_by, row.automatic,
                    row.created_at.isoformat(), row.case_id or "", review.reviewer,
                    review.created_at.isoformat(), review.outcome, review.without_intervention,
                    review.could_be_better or "", "yes" if review.appropriate else "no",
                ])
        return out.getvalue()

    def requeue_parked(self) -> int:
        """Retry every parked outbound request (after the receiver is fixed).

        A reply staff have posted by hand since, or replaced, is not sent again; the
        cards of replies queued again say they are being sent.
        """
        now = self.workflow.now()
        with session_scope(self.workflow.services.engine) as session:
            count, revived = esc_store.requeue_parked(session=session, now=now)
            for mention_id in revived:
                outbox.enqueue_card_update(session=session, mention_id=mention_id, now=now)
        self.workflow.notify("dispatch", "outbox")
        return count


def case_payload(mention: Mention, row: Escalation, post: Any) -> dict[str, Any]:
    """The JSON body of the CRM case webhook."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "event": "carebot.escalation",
        "escalation_id": row.id,
        "severity": row.severity,
        "reason": row.reason,
        "customer_context": row.context,
        "escalated_by": row.escalated_by,
        "escalated_at": iso(row.created_at),
        "automatic": row.automatic,
        "mention": {
            "id": mention.id, "source": mention.source, "external_id": mention.external_id,
            "url": mention.url, "author": mention.author, "author_reach": mention.author_reach,
            "text": mention.text, "lang": mention.lang, "category": mention.category,
            "sentiment": mention.sentiment, "published_at": iso(mention.published_at),
            "ingested_at": iso(mention.ingested_at),
        },
        "slack": {"channel": post.channel, "ts": post.ts} if post is not None else None,
    }
