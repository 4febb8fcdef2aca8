"""The ``Services`` facade: every use case the handlers, CLI and jobs call."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.classify import Classifier
from bot.config import CareConfig
from bot.domain import Category, MentionIn, Prediction
from bot.errors import AlreadyClaimed, NotAllowed, NotFound
from bot.metrics import Metrics
from bot.services.attention import Attention, ConversionScore, Escalate
from bot.services.workflow import Workflow
from bot.views import CardView
from storage import audit, engagements, mentions, observability, outbox
from storage.db import Engine, Session, retry_conflicts, session_scope
from storage.tables import Mention

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_clock() -> datetime:
    return datetime.now(UTC)


#: Outbox priority by category: fraud and cases jump the per-channel queue.
CATEGORY_PRIORITY: dict[str, int] = {
    "fraud": 8, "case": 7, "rant": 6, "lead": 5, "query": 4, "rfe": 3, "rave": 2, "noise": 0,
}


@dataclass(frozen=True, slots=True)
class IngestResult:
    new_ids: list[int]
    duplicates: int


@dataclass(frozen=True, slots=True)
class RouteResult:
    mention_id: int
    category: str
    department: str | None
    channel: str | None


class Services:
    """Use cases over one database, one care config and one classifier.

    Args:
        engine: the SQLAlchemy engine (the boundary opens sessions on it).
        config: the care configuration.
        classifier: the engine that sorts mentions.
        clock: source of "now" (tests pass a controllable one).
        notify: called with ``"pipeline"`` or ``"outbox"`` when new work is queued,
            so in-process workers wake at once instead of at their next poll.
        metrics: this runtime's Prometheus metrics (a private registry by default).
    """

    def __init__(
        self,
        *,
        engine: Engine,
        config: CareConfig,
        classifier: Classifier,
        clock: Clock = utc_clock,
        notify: Callable[[str], None] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.engine = engine
        self.metrics = metrics or Metrics()
        self.config = config
        self.classifier = classifier
        self.clock = clock
        self._notify = notify or (lambda _kind: None)
        self.attention = Attention(engine=engine, config=config, clock=clock,
                                   notify=self._notify, escalate=workflow_escalate(self),
                                   conversion_score=agent_conversion_score(self))
        # Card actions beyond claim (respond, escalate, resolve, reclassify...).
        self.workflow = Workflow(self)

    # -- ingest and routing -------------------------------------------------

    def ingest(self, items: Sequence[MentionIn]) -> IngestResult:
        """Store mentions; ones already stored (same source and id) are skipped."""
        now = self.clock()
        with session_scope(self.engine) as session:
            new_ids = mentions.insert_mentions(session=session, items=items, now=now)
            for mention_id in new_ids:
                audit.record(session=session, actor="carebot", action="ingested",
                             mention_id=mention_id, now=now)
            by_source = (Counter(item.source for item in items) if len(new_ids) == len(items)
                         else observability.sources_of(session=session, mention_ids=new_ids))
        self.metrics.ingested(by_source, duplicates=len(items) - len(new_ids))
        if new_ids:
            self._notify("pipeline")
        return IngestResult(new_ids=new_ids, duplicates=len(items) - len(new_ids))

    def route_pending(self, *, owner: str, limit: int = 64,
                      lease: timedelta = timedelta(minutes=2)) -> list[RouteResult]:
        """Classify a batch of new mentions and queue their cards.

        Leasing, classifying and recording are three steps so the database is
        not locked while the model runs; a worker that dies mid-batch leaves
        leases that expire and are taken over.
        """
        now = self.clock()
        with session_scope(self.engine) as session:
            batch = mentions.lease_new(session=session, owner=owner, limit=limit, now=now,
                                       lease=lease)
        if not batch:
            return []
        predictions = self.classifier.predict([m.text for m in batch], [m.lang for m in batch])
        self.attention.prepare(batch)  # CRM lookups, outside the write transaction
        results: list[RouteResult] = []
        methods: list[str] = []
        queued = False
        with session_scope(self.engine) as session:
            now = self.clock()
            for mention, prediction in zip(batch, predictions, strict=True):
                fresh = session.get(Mention, mention.id)
                if fresh is None or fresh.stage != "new" or fresh.lease_owner != owner:
                    continue  # lease lost to another worker; it routes the mention
                department, channel = self.route_for(prediction)
                mentions.record_route(session=session, mention=fresh, prediction=prediction,
                                      department=department, channel=channel)
                audit.record(session=session, actor="carebot", action="routed",
                             mention_id=fresh.id, now=now,
                             detail={"category": prediction.category.value,
                                     "confidence": prediction.confidence,
                                     "method": prediction.method, "channel": channel})
                attention = self.attention.on_routed(session=session, mention=fresh, now=now,
                                                     posted=channel is not None)
                if channel is not None:
                    outbox.enqueue_post_card(
                        session=session, mention_id=fresh.id,  # type: ignore[arg-type]
                        channel=channel, now=now, priority=attention.outbox_priority)
                    queued = True
                results.append(RouteResult(fresh.id, prediction.category.value,  # type: ignore[arg-type]
                                           department, channel))
                methods.append(prediction.method)
        for result, method in zip(results, methods, strict=True):
            self.metrics.classified(category=result.category, method=method)
        if queued:
            self._notify("outbox")
        return results

    def route_for(self, prediction: Prediction) -> tuple[str | None, str | None]:
        """(department, channel) for a prediction; below the threshold -> triage."""
        if prediction.confidence < self.config.classification.threshold:
            return None, self.config.triage_channel
        department = self.config.routing.get(prediction.category)
        if department is None:
            return None, None
        return department, self.config.departments[department].channel

    # -- claim ---------------------------------------------------------------

    @retry_conflicts()
    def claim(self, *, mention_id: int, user: str) -> CardView:
        """Claim a mention for ``user``; exactly one of concurrent claimers wins.

        Raises:
            NotFound: no such mention.
            AlreadyClaimed: someone else holds it.
        """
        now = self.clock()
        with session_scope(self.engine) as session:
            self._require_mention(session, mention_id)
            if engagements.try_claim(session=session, mention_id=mention_id, user=user, now=now):
                audit.record(session=session, actor=user, action="claimed",
                             mention_id=mention_id, now=now)
                outbox.enqueue_card_update(session=session, mention_id=mention_id, now=now)
            else:
                current = engagements.get(session=session, mention_id=mention_id)
                holder = current.claimed_by if current else None
                if holder != user:
                    raise AlreadyClaimed(mention_id, holder or "someone")
            view = self._card_view(session, mention_id)
        self._notify("outbox")
        return view

    @retry_conflicts()
    def unclaim(self, *, mention_id: int, user: str) -> CardView:
        """Release the claim ``user`` holds.

        Raises:
            NotFound: no such mention.
            NotAllowed: ``user`` does not hold the claim.
        """
        now = self.clock()
        with session_scope(self.engine) as session:
            self._require_mention(session, mention_id)
            if not engagements.try_unclaim(session=session, mention_id=mention_id, user=user):
                current = engagements.get(session=session, mention_id=mention_id)
                if current is None or current.claimed_by is None:
                    raise NotAllowed("This mention is not claimed.")
                raise NotAllowed(f"Only <@{current.claimed_by}> can unclaim this mention.")
            audit.record(session=session, actor=user, action="unclaimed",
                         mention_id=mention_id, now=now)
            outbox.enqueue_card_update(session=session, mention_id=mention_id, now=now)
            view = self._card_view(session, mention_id)
        self._notify("outbox")
        return view

    # -- queues and events ---------------------------------------------------

    def unclaimed_by_channel(self) -> dict[str, int]:
        """Routed, posted, unclaimed mentions per channel."""
        with session_scope(self.engine) as session:
            return mentions.unclaimed_by_channel(session=session)

    def first_delivery(self, event_id: str) -> bool:
        """True the first time a Slack ``event_id`` is seen; False for a redelivery."""
        with session_scope(self.engine) as session:
            return mentions.remember_event(session=session, event_id=event_id, now=self.clock())

    # -- views ---------------------------------------------------------------

    def card_view(self, mention_id: int) -> CardView:
        with session_scope(self.engine) as session:
            self._require_mention(session, mention_id)
            return self._card_view(session, mention_id)

    def _require_mention(self, session: Session, mention_id: int) -> Mention:
        mention = mentions.get_mention(session=session, mention_id=mention_id)
        if mention is None:
            raise NotFound(f"Mention {mention_id} does not exist.")
        return mention

    def card_view_in(self, session: Session, mention_id: int) -> CardView:
        """The card view-model, inside a unit of work the caller owns."""
        return self._card_view(session, mention_id)

    def _card_view(self, session: Session, mention_id: int) -> CardView:
        mention = self._require_mention(session, mention_id)
        engagement = engagements.get(session=session, mention_id=mention_id)
        latest = mentions.latest_classification(session=session, mention_id=mention_id)
        department = self.config.departments.get(mention.department or "")
        current = outbox.current_post(session=session, mention_id=mention_id)
        return CardView(
            mention_id=mention_id,
            source=mention.source,
            url=mention.url,
            author=mention.author,
            author_reach=mention.author_reach,
            text=mention.text,
            lang=mention.lang,
            category=mention.category,
            confidence=mention.confidence,
            method=latest.method if latest else None,
            sentiment=mention.sentiment,
            sentiment_score=mention.sentiment_score,
            published_at=mention.published_at,
            ingested_at=mention.ingested_at,
            department_label=(department.label or mention.department) if department else None,
            triage=mention.channel == self.config.triage_channel and mention.department is None,
            claimed_by=engagement.claimed_by if engagement else None,
            claimed_at=engagement.claimed_at if engagement else None,
            moved_to_channel=current.channel if current else None,
            workflow=self.workflow.card_state(session, mention_id),
            **self.attention.card_fields(session, mention_id),
        )



# -- wiring to the engagement workflow ------------------------------------------


def workflow_escalate(services: Any) -> Escalate:
    """The Social 911 path of the workflow (``services.workflow.escalations``).

    Resolved at call time, so the attention service can be built before the
    workflow; when no workflow is installed the escalation is posted to the
    alert channel instead (``Attention._fallback_escalation``).
    """

    def escalate(mention_id: int, reason: str, actor: str = "carebot") -> object:
        escalations = getattr(getattr(services, "workflow", None), "escalations", None)
        if escalations is None:
            return services.attention._fallback_escalation(mention_id, reason,
                                                           services.clock())
        return escalations.escalate(
            mention_id=mention_id, user=actor, reason=reason, automatic=True,
            severity=services.config.attention.sla.escalation_severity)

    return escalate


def agent_conversion_score(services: Any) -> ConversionScore:
    """``user -> (average conversion score, count)`` from the workflow's conversions."""

    def score(user: str) -> tuple[float | None, int]:
        try:
            from bot.services.conversions import conversion_stats
        except ImportError:  # the workflow is not installed
            return None, 0
        for stat in conversion_stats(services, by="agent"):
            if stat.key == user:
                return stat.average, stat.count
        return None, 0

    return score


__all__ = ["Category", "Clock", "IngestResult", "RouteResult", "Services", "utc_clock"]
