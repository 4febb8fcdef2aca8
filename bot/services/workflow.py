"""Engagement workflow on the cards: respond, resolve, reclassify, notes, flags,
conversions, and the times per mention.

Every public method is one unit of work: it checks permissions, makes its state
change with a conditional update (see ``storage.workflow``), audits it, queues
the card re-render in the same transaction and wakes the outbox. Escalation and
its after-action review live in :mod:`bot.services.escalation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.domain import Category, Prediction, Sentiment
from bot.errors import InvalidInput, NotAllowed, NotFound
from bot.services.conversions import conversion_score
from bot.services.escalation import Escalations
from bot.services.mrkdwn import escape
from bot.services.permissions import Permission, Permissions
from bot.services.replier import Replier, ReplyTarget, check_reply, default_replier
from bot.views import CardView, ModalContext, WorkflowState
from storage import audit, engagements, mentions, outbox
from storage import escalations as esc_store
from storage import feedback as feedback_store
from storage import workflow as store
from storage.db import Session, retry_conflicts, session_scope
from storage.tables import Mention

if TYPE_CHECKING:
    from bot.services.core import Services

MAX_REPLY = 3000
MAX_NOTE = 3000

FLAG_STAR = "star"
FLAG_KB = "kb"


@dataclass(frozen=True, slots=True)
class MentionTimes:
    """Durations of one engagement (``None`` until the milestone is reached).

    ``to_claim`` and ``to_resolution`` count from the mention's arrival in
    carebot; first response counts both from its publication at the source
    (arrival when the source gave no time) and from its arrival.
    """

    to_claim: timedelta | None
    first_response_from_publication: timedelta | None
    first_response_from_arrival: timedelta | None
    to_resolution: timedelta | None


@dataclass(frozen=True, slots=True)
class ReplyOutcome:
    """What Respond did: ``queued`` to be sent through the source, or ``draft`` to copy."""

    status: str
    card: CardView


class Workflow:
    """The card actions beyond claim. Reached as ``services.workflow``.

    Args:
        services: the services facade (engine, config, clock, notify).
        replier: sends replies through sources; defaults to ``bot.sources.replies``
            when present, else copy-ready text only.
    """

    def __init__(self, services: Services, *, replier: Replier | None = None) -> None:
        self.services = services
        self.permissions = Permissions(services.config.workflow.permissions)
        self.replier: Replier = replier or default_replier(services.config)
        self.escalations = Escalations(self)

    # -- plumbing ------------------------------------------------------------

    def now(self) -> datetime:
        return self.services.clock()

    def notify(self, *kinds: str) -> None:
        for kind in kinds:
            self.services._notify(kind)

    def require(self, user: str, permission: Permission) -> None:
        """Raise ``NotAllowed`` (a clear message) unless ``user`` has ``permission``."""
        self.permissions.require(user, permission)

    def mention(self, session: Session, mention_id: int) -> Mention:
        found = mentions.get_mention(session=session, mention_id=mention_id)
        if found is None:
            raise NotFound(f"Mention {mention_id} does not exist.")
        return found

    def changed(self, session: Session, mention_id: int, *, actor: str, action: str,
                now: datetime, detail: dict[str, object] | None = None) -> CardView:
        """Audit a state change, queue the card re-render, return the fresh view."""
        audit.record(session=session, actor=actor, action=action, mention_id=mention_id,
                     now=now, detail=detail)
        outbox.enqueue_card_update(session=session, mention_id=mention_id, now=now)
        return self.services.card_view_in(session, mention_id)

    # -- card state ------------------------------------------------------------

    def card_state(self, session: Session, mention_id: int) -> WorkflowState:
        """The workflow part of a card's view-model."""
        mention = self.mention(session, mention_id)
        eng = engagements.get(session=session, mention_id=mention_id)
        reply = store.latest_reply(session=session, mention_id=mention_id)
        escalation = esc_store.latest_escalation(session=session, mention_id=mention_id)
        conversion = store.conversion_for(session=session, mention_id=mention_id)
        latest = mentions.latest_classification(session=session, mention_id=mention_id)
        flags = store.flags_for(session=session, mention_id=mention_id)
        # Noise that a person decided (or that routed nowhere); a low-confidence
        # noise guess sits in triage as a new card for someone to decide.
        decided = latest is not None and latest.actor is not None
        if (mention.category == Category.NOISE and mention.stage == "routed"
                and (decided or mention.channel is None)):
            status = "noise"
        elif eng is not None and eng.resolved_at is not None:
            status = "resolved"
        elif eng is not None and eng.escalated_at is not None:
            status = "escalated"
        elif eng is not None and eng.first_response_at is not None:
            status = "responded"
        elif eng is not None and eng.claimed_by is not None:
            status = "claimed"
        else:
            status = "new"
        return WorkflowState(
            status=status,
            responded_by=eng.responded_by if eng else None,
            first_response_at=eng.first_response_at if eng else None,
            reply_text=reply.text if reply else None,
            reply_status=reply.status if reply else None,
            reply_author=reply.author if reply else None,
            escalated_by=eng.escalated_by if eng else None,
            escalated_at=eng.escalated_at if eng else None,
            severity=escalation.severity if escalation and eng and eng.escalated_at else None,
            case_id=escalation.case_id if escalation else None,
            crm_status=escalation.crm_status if escalation else None,
            resolved_by=eng.resolved_by if eng else None,
            resolved_at=eng.resolved_at if eng else None,
            reclassified_by=latest.actor if latest and latest.method == "human" else None,
            conversion_before=conversion.before if conversion else None,
            conversion_after=conversion.after if conversion else None,
            conversion_score=conversion.score if conversion else None,
            conversion_by=conversion.tagged_by if conversion else None,
            starred_by=flags.get(FLAG_STAR),
            kb_by=flags.get(FLAG_KB),
            notes=store.count_notes(session=session, mention_id=mention_id),
        )

    def modal_context(self, mention_id: int) -> ModalContext:
        """What a card's modal shows: the mention, its reply path and the last draft."""
        with session_scope(self.services.engine) as session:
            mention = self.mention(session, mention_id)
            reply = store.latest_reply(session=session, mention_id=mention_id)
            return ModalContext(
                mention_id=mention_id, source=mention.source, url=mention.url,
                author=mention.author, text=mention.text, category=mention.category,
                sentiment=mention.sentiment, reply_capable=self.replier.capable(mention.source),
                draft=reply.text if reply and reply.status in ("draft", "failed") else None)

    # -- respond ---------------------------------------------------------------

    @staticmethod
    def _reply_text(text: str) -> str:
        text = text.strip()
        if not text:
            raise InvalidInput("The reply is empty.")
        if len(text) > MAX_REPLY:
            raise InvalidInput(f"The reply is over {MAX_REPLY} characters.")
        return text

    def _check_reply(self, session: Session, mention: Mention, text: str) -> None:
        if self.replier.capable(mention.source):
            check_reply(self.replier, self.reply_target(session, int(mention.id or 0)), text)

    def check_reply(self, *, mention_id: int, text: str) -> None:
        """Refuse, before the form closes, a reply that cannot be sent as written.

        Raises:
            InvalidInput: empty, over ``MAX_REPLY``, or over the source's own limit.
        """
        text = self._reply_text(text)
        with session_scope(self.services.engine) as session:
            self._check_reply(session, self.mention(session, mention_id), text)

    @retry_conflicts()
    def respond(self, *, mention_id: int, user: str, text: str) -> ReplyOutcome:
        """Reply to the customer: sent through the source when it can, else copy-ready.

        The sender claims the mention if nobody has. A reply through the source
        goes out from the durable dispatch queue; the first response is recorded
        when it is sent. A copy-ready draft waits for :meth:`confirm_responded`.

        Raises:
            InvalidInput: see :meth:`check_reply`.
        """
        text = self._reply_text(text)
        now = self.now()
        with session_scope(self.services.engine) as session:
            store.lock(session=session, mention_id=mention_id)  # lock, then read
            mention = self.mention(session, mention_id)
            latest = store.latest_reply(session=session, mention_id=mention_id)
            if (latest is not None and latest.author == user and latest.text == text
                    and latest.status in ("queued", "sent")):
                # The same form submitted again (a retry, a double click): the customer
                # already has, or is about to get, this reply; never post it twice.
                return ReplyOutcome(status=latest.status,
                                    card=self.services.card_view_in(session, mention_id))
            self._check_reply(session, mention, text)
            store.claim_if_unclaimed(session=session, mention_id=mention_id, user=user, now=now)
            if self.replier.capable(mention.source):
                reply = store.add_reply(session=session, mention_id=mention_id, author=user,
                                        text=text, status="queued", now=now)
                esc_store.enqueue(session=session, kind=esc_store.SOURCE_REPLY, now=now,
                                  mention_id=mention_id, ref_id=reply.id,
                                  payload={"source": mention.source})
                status = "queued"
            else:
                store.add_reply(session=session, mention_id=mention_id, author=user, text=text,
                                status="draft", now=now)
                status = "draft"
            card = self.changed(session, mention_id, actor=user, action=f"reply_{status}",
                                now=now, detail={"chars": len(text)})
        self.notify("outbox", "dispatch")
        return ReplyOutcome(status=status, card=card)

    @retry_conflicts()
    def confirm_responded(self, *, mention_id: int, user: str) -> CardView:
        """The staff member posted the copy-ready reply themselves: record the response."""
        now = self.now()
        with session_scope(self.services.engine) as session:
            store.lock(session=session, mention_id=mention_id)  # lock, then read
            self.mention(session, mention_id)
            reply = store.latest_reply(session=session, mention_id=mention_id)
            if reply is None or reply.status not in ("draft", "failed"):
                raise InvalidInput("There is no reply draft waiting for confirmation.")
            store.finish_reply(session=session, reply_id=reply.id or 0, now=now,
                               from_status=reply.status, to_status="confirmed")
            store.claim_if_unclaimed(session=session, mention_id=mention_id, user=user, now=now)
            first = store.record_first_response(session=session, mention_id=mention_id,
                                                user=user, now=now)
            card = self.changed(session, mention_id, actor=user, action="responded", now=now,
                                detail={"first": first, "via": "copy"})
        self.notify("outbox")
        return card

    def reply_sent(self, session: Session, *, reply_id: int, external_id: str | None,
                   now: datetime) -> None:
        """The dispatch worker sent a reply through its source."""
        reply = store.get_reply(session=session, reply_id=reply_id)
        if reply is None or not store.finish_reply(session=session, reply_id=reply_id,
                                                   from_status="queued", to_status="sent",
                                                   now=now, external_id=external_id):
            return
        first = store.record_first_response(session=session, mention_id=reply.mention_id,
                                            user=reply.author, now=now)
        self.changed(session, reply.mention_id, actor=reply.author, action="responded", now=now,
                     detail={"first": first, "via": "source", "external_id": external_id})

    def reply_failed(self, session: Session, *, reply_id: int, error: str,
                     now: datetime) -> None:
        """The source kept refusing a reply: it becomes copy-ready text on the card."""
        reply = store.get_reply(session=session, reply_id=reply_id)
        if reply is None or not store.finish_reply(session=session, reply_id=reply_id,
                                                   from_status="queued", to_status="failed",
                                                   now=now):
            return
        self.changed(session, reply.mention_id, actor="carebot", action="reply_failed", now=now,
                     detail={"error": error})

    # -- resolve / reopen ------------------------------------------------------

    @retry_conflicts()
    def resolve(self, *, mention_id: int, user: str) -> CardView:
        """Resolve a mention (claiming it for ``user`` if unclaimed).

        Resolving an escalated mention asks the escalator for an after-action review.

        Raises:
            NotAllowed: ``user`` lacks the resolve permission, or it is already resolved.
        """
        self.require(user, Permission.RESOLVE)
        now = self.now()
        with session_scope(self.services.engine) as session:
            self.mention(session, mention_id)
            if not store.try_resolve(session=session, mention_id=mention_id, user=user, now=now):
                eng = engagements.get(session=session, mention_id=mention_id)
                by = eng.resolved_by if eng else None
                raise NotAllowed(f"Already resolved by <@{by}>." if by else "Already resolved.")
            eng = engagements.get(session=session, mention_id=mention_id)
            if eng is not None and eng.escalated_at is not None:
                self.escalations.ask_for_review(session, mention_id=mention_id, resolver=user,
                                                now=now)
            card = self.changed(session, mention_id, actor=user, action="resolved", now=now)
        self.notify("outbox")
        return card

    @retry_conflicts()
    def reopen(self, *, mention_id: int, user: str) -> CardView:
        """Reopen a resolved mention (admin action)."""
        self.require(user, Permission.ADMIN)
        now = self.now()
        with session_scope(self.services.engine) as session:
            self.mention(session, mention_id)
            if not store.try_reopen(session=session, mention_id=mention_id):
                raise NotAllowed("This mention is not resolved.")
            card = self.changed(session, mention_id, actor=user, action="reopened", now=now)
        self.notify("outbox")
        return card

    # -- reclassify --------------------------------------------------------------

    @retry_conflicts()
    def reclassify(self, *, mention_id: int, user: str, category: Category) -> CardView:
        """Correct a mention's category: the card moves to that department's channel.

        The old card is updated to point to the new one; noise stays where it is
        and shows as noise. The correction is stored as training feedback.

        Raises:
            InvalidInput: the mention already has that category and channel.
        """
        from bot.services.core import CATEGORY_PRIORITY

        now = self.now()
        with session_scope(self.services.engine) as session:
            store.lock(session=session, mention_id=mention_id)  # lock, then read
            mention = self.mention(session, mention_id)
            department = self.services.config.routing.get(category)
            channel = (self.services.config.departments[department].channel
                       if department is not None else None)
            before = mention.category
            if before == category.value and self._decided(session, mention, channel):
                raise InvalidInput(f"This mention is already *{category.value}*.")
            feedback_store.record(session=session, mention_id=mention_id, text=mention.text,
                                  lang=mention.lang, predicted=before, category=category.value,
                                  actor=user, now=now)
            sentiment = Sentiment(mention.sentiment) if mention.sentiment else None
            mentions.record_route(
                session=session, mention=mention, actor=user, department=department,
                channel=channel if channel is not None else mention.channel,
                prediction=Prediction(category=category, confidence=1.0, method="human",
                                      sentiment=sentiment,
                                      sentiment_score=mention.sentiment_score))
            if channel is not None:
                store.move_card(session=session, mention_id=mention_id, channel=channel,
                                priority=CATEGORY_PRIORITY.get(category.value, 0), now=now)
            # The new category's first-response target and priority, from the same
            # start; warnings and alerts already sent stay sent.
            self.services.attention.on_routed(session=session, mention=mention, now=now,
                                              posted=mention.channel is not None)
            card = self.changed(session, mention_id, actor=user, action="reclassified", now=now,
                                detail={"from": before, "to": category.value,
                                        "channel": channel})
        self.notify("outbox")
        return card

    @staticmethod
    def _decided(session: Session, mention: Mention, channel: str | None) -> bool:
        """True when the mention already sits where ``channel`` (its category's home) puts it.

        A category routed nowhere (noise) is settled once a person decided it or it
        was posted nowhere; a low-confidence guess of it waiting in triage is not.
        """
        if channel is not None:
            return mention.channel == channel
        latest = mentions.latest_classification(session=session,
                                                mention_id=mention.id)  # type: ignore[arg-type]
        return mention.channel is None or (latest is not None and latest.actor is not None)

    def mark_noise(self, *, mention_id: int, user: str) -> CardView:
        return self.reclassify(mention_id=mention_id, user=user, category=Category.NOISE)

    # -- notes and thread discussion -------------------------------------------

    @retry_conflicts()
    def add_note(self, *, mention_id: int, user: str, text: str) -> CardView:
        """Add an internal note: stored, and posted into the card's thread."""
        text = text.strip()
        if not text:
            raise InvalidInput("The note is empty.")
        if len(text) > MAX_NOTE:
            raise InvalidInput(f"The note is over {MAX_NOTE} characters.")
        now = self.now()
        with session_scope(self.services.engine) as session:
            store.lock(session=session, mention_id=mention_id)  # lock, then read
            self.mention(session, mention_id)
            post = outbox.current_post(session=session, mention_id=mention_id)
            if post is None:
                raise InvalidInput("This mention has no card to note on.")
            last = next((n for n in reversed(store.notes_for(session=session,
                                                             mention_id=mention_id))
                         if n.kind == "note"), None)
            if last is not None and last.author == user and last.text == text:
                # The same form submitted again (a double click, a retry): one note.
                # Repeating one's own latest note adds nothing to the thread either.
                return self.services.card_view_in(session, mention_id)
            store.add_note(session=session, mention_id=mention_id, author=user, text=text,
                           kind="note", now=now)
            # Threaded under the card, its ts looked up at delivery: a card whose post
            # is still on its way (clicked a moment after it appeared) gets the note
            # as soon as its ts is recorded.
            outbox.enqueue_message(
                session=session, channel=post.channel, now=now, mention_id=mention_id,
                priority=9,
                payload={"channel": post.channel, outbox.THREAD_ON_CARD: True,
                         "text": f":memo: *Internal note* from <@{user}>:\n{escape(text)}",
                         "unfurl_links": False, "unfurl_media": False})
            card = self.changed(session, mention_id, actor=user, action="note_added", now=now)
        self.notify("outbox")
        return card

    @retry_conflicts()
    def record_thread_reply(self, *, channel: str, thread_ts: str, ts: str, user: str,
                            text: str) -> int | None:
        """Record a staff reply in a card's thread as internal discussion.

        Returns the mention id, or ``None`` when the thread is not a card's (or
        the message was already recorded). Nothing is sent to the customer.
        """
        now = self.now()
        with session_scope(self.services.engine) as session:
            post = store.post_by_ts(session=session, channel=channel, ts=thread_ts)
            if post is None:
                return None
            if not store.add_note(session=session, mention_id=post.mention_id, author=user,
                                  text=text, kind="thread", channel=channel, ts=ts, now=now):
                return None
            self.changed(session, post.mention_id, actor=user, action="thread_reply", now=now,
                         detail={"ts": ts})
        self.notify("outbox")
        return post.mention_id

    def notes(self, mention_id: int) -> list[tuple[str, str, str]]:
        """Internal discussion of a mention: ``(kind, author, text)`` in order."""
        with session_scope(self.services.engine) as session:
            return [(n.kind, n.author, n.text)
                    for n in store.notes_for(session=session, mention_id=mention_id)]

    # -- flags -----------------------------------------------------------------

    @retry_conflicts()
    def toggle_flag(self, *, mention_id: int, user: str, flag: str) -> CardView:
        """Star (weekly leadership digest) or mark as KB candidate; again to undo."""
        if flag not in (FLAG_STAR, FLAG_KB):
            raise InvalidInput(f"Unknown flag {flag!r}.")
        now = self.now()
        with session_scope(self.services.engine) as session:
            store.lock(session=session, mention_id=mention_id)  # lock, then read
            self.mention(session, mention_id)
            on = store.toggle_flag(session=session, mention_id=mention_id, flag=flag, actor=user,
                                   now=now)
            card = self.changed(session, mention_id, actor=user, now=now,
                                action=f"{flag}_{'set' if on else 'cleared'}")
        self.notify("outbox")
        return card

    def flagged(self, flag: str, *, since: datetime | None = None,
                until: datetime | None = None) -> list[int]:
        """Mention ids flagged ``star`` or ``kb`` (for digests and KB harvesting)."""
        with session_scope(self.services.engine) as session:
            return [row.mention_id for row in store.flagged(session=session, flag=flag,
                                                            since=since, until=until)]

    # -- conversions -------------------------------------------------------------

    @retry_conflicts()
    def tag_conversion(self, *, mention_id: int, user: str, before: str,
                       after: str) -> CardView:
        """Tag the sentiment before and after the engagement (see ``conversions``).

        Raises:
            InvalidInput: not a sentiment, or the mention is marked as noise (no
                engagement; its card offers no conversion tag).
        """
        score = conversion_score(before, after)
        now = self.now()
        with session_scope(self.services.engine) as session:
            store.lock(session=session, mention_id=mention_id)  # lock, then read
            mention = self.mention(session, mention_id)
            if self.card_state(session, mention_id).status == "noise":
                raise InvalidInput("This mention is marked as noise: there is no engagement "
                                   "to tag a conversion on. Reclassify it first.")
            eng = engagements.get(session=session, mention_id=mention_id)
            agent = (eng.responded_by or eng.claimed_by if eng else None) or user
            store.upsert_conversion(session=session, mention_id=mention_id, before=before,
                                    after=after, score=score, agent=agent,
                                    department=mention.department, tagged_by=user, now=now)
            card = self.changed(session, mention_id, actor=user, action="conversion_tagged",
                                now=now, detail={"before": before, "after": after,
                                                 "score": score, "agent": agent})
        self.notify("outbox")
        return card

    # -- times -----------------------------------------------------------------

    def times(self, mention_id: int) -> MentionTimes:
        """How long the engagement took to each milestone (see :class:`MentionTimes`)."""
        with session_scope(self.services.engine) as session:
            mention = self.mention(session, mention_id)
            eng = engagements.get(session=session, mention_id=mention_id)
        arrived = mention.ingested_at
        published = mention.published_at or arrived

        def since(start: datetime, end: datetime | None) -> timedelta | None:
            return None if end is None else end - start

        return MentionTimes(
            to_claim=since(arrived, eng.first_claimed_at if eng else None),
            first_response_from_publication=since(published,
                                                  eng.first_response_at if eng else None),
            first_response_from_arrival=since(arrived, eng.first_response_at if eng else None),
            to_resolution=since(arrived, eng.resolved_at if eng else None),
        )

    def reply_target(self, session: Session, mention_id: int) -> ReplyTarget:
        mention = self.mention(session, mention_id)
        return ReplyTarget(mention_id=mention_id, source=mention.source,
                           external_id=mention.external_id, url=mention.url,
                           author=mention.author)
