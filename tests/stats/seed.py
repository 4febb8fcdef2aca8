"""Deterministic seeded data for the stats tests, written straight to the tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from storage.db import session_scope
from storage.tables import Classification, Engagement, Mention
from storage.workflow_tables import Conversion, MentionFlag

#: Monday 2026-11-23 12:00 UTC (Europe/Dublin is UTC in November).
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

CATEGORIES = ["case", "case", "rant", "rave", "query", "rfe", "lead", "noise", "fraud", "case"]
DEPARTMENT = {"case": "support", "rant": "comms", "rave": "marketing", "query": "docs",
              "rfe": "product", "lead": "sales", "fraud": "legal", "noise": None}
CHANNEL = {"support": "C0SUPPORT", "comms": "C0COMMS", "marketing": "C0MARKETING",
           "docs": "C0DOCS", "product": "C0PRODUCT", "sales": "C0SALES", "legal": "C0LEGAL"}
LANGS = ["en", "en", "de", "fr", "en", "es", None]
SOURCES = ["twitter", "reddit", "forum", "twitter", "rss"]
AGENTS = ["U0ALICE", "U0BOB", "U0CARA"]
TEXTS = {
    "case": "nimbus sync keeps failing with error 4012 after the update #brandfail",
    "rant": "worst update ever, sync broken again #brandfail",
    "rave": "love the new offline mode in nimbus, sync is fast now",
    "query": "how do i export my notes from nimbus",
    "rfe": "please add calendar integration to nimbus",
    "lead": "pricing for 200 licenses of nimbus?",
    "noise": "the cumulus clouds look like nimbus today",
    "fraud": "selling cheap nimbus keys, fake license generator",
}


@dataclass
class Seeded:
    mentions: list[Mention] = field(default_factory=list)
    engagements: dict[int, Engagement] = field(default_factory=dict)
    classifications: list[Classification] = field(default_factory=list)
    conversions: dict[int, Conversion] = field(default_factory=dict)
    stars: set[int] = field(default_factory=set)


def seed(engine: Engine, *, days: int = 9, per_day: int = 23, now: datetime = NOW) -> Seeded:
    """``per_day`` mentions per day for ``days`` days before ``now`` (and today so far).

    Every value follows from the index, so a test can reason about any of it.
    """
    out = Seeded()
    with session_scope(engine) as session:
        start = now - timedelta(days=days)
        i = 0
        while True:
            at = start + timedelta(minutes=i * (24 * 60 // per_day)) + timedelta(seconds=i)
            if at >= now:
                break
            category = CATEGORIES[i % len(CATEGORIES)]
            department = DEPARTMENT[category]
            low_confidence = i % 13 == 0
            mention = Mention(
                source=SOURCES[i % len(SOURCES)], external_id=f"m{i}", author=f"user{i % 17}",
                author_reach=(i * 37) % 5000, text=f"{TEXTS[category]} ({i})",
                url=f"https://example.com/{i}", lang=LANGS[i % len(LANGS)], ingested_at=at,
                published_at=at - timedelta(minutes=3), stage="routed", category=category,
                confidence=0.4 if low_confidence else 0.9,
                sentiment=["negative", "neutral", "positive"][i % 3],
                department=None if low_confidence else department,
                channel="C0TRIAGE" if low_confidence else CHANNEL.get(department or ""))
            session.add(mention)
            session.flush()
            mid = int(mention.id)  # type: ignore[arg-type]
            out.mentions.append(mention)
            first = Classification(mention_id=mid, category=category,
                                   confidence=mention.confidence or 0.0, method="rules",
                                   created_at=at)
            session.add(first)
            out.classifications.append(first)
            if i % 11 == 0:  # a human moved it to another category
                human = Classification(mention_id=mid, category="rant" if category != "rant"
                                       else "case", confidence=1.0, method="human",
                                       actor=AGENTS[i % 3], created_at=at + timedelta(minutes=9))
                session.add(human)
                out.classifications.append(human)
            elif i % 7 == 0:  # a human confirmed the same category: not a correction
                same = Classification(mention_id=mid, category=category, confidence=1.0,
                                      method="human", actor=AGENTS[i % 3],
                                      created_at=at + timedelta(minutes=4))
                session.add(same)
                out.classifications.append(same)
            engagement = Engagement(mention_id=mid)
            if category != "noise" and i % 4 != 3:
                agent = AGENTS[i % 3]
                engagement.claimed_by = agent
                engagement.claimed_at = at + timedelta(minutes=1)
                if i % 5 != 4:
                    engagement.first_response_at = at + timedelta(minutes=(i * 7) % 45 + 1)
                    engagement.responded_by = agent
            session.add(engagement)
            out.engagements[mid] = engagement
            if category in ("rant", "case") and i % 3 == 0 and engagement.responded_by:
                before = "negative"
                after = ["neutral", "positive"][(i // 3) % 2]
                score = {"neutral": 1, "positive": 2}[after]
                conversion = Conversion(mention_id=mid, before=before, after=after, score=score,
                                        agent=engagement.responded_by, department=department,
                                        tagged_by=engagement.responded_by,
                                        tagged_at=at + timedelta(hours=1))
                session.add(conversion)
                out.conversions[mid] = conversion
            if category == "rfe" and i % 20 == 5:
                session.add(MentionFlag(mention_id=mid, flag="star", actor="U0ALICE",
                                        created_at=at + timedelta(hours=2)))
                out.stars.add(mid)
            i += 1
    return out
