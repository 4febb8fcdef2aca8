"""Daily and weekly digests: their numbers, their blocks (snapshots), Block Kit
limits, and once-per-period delivery across restarts."""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from sqlmodel import Session, select

from bot.classify.factory import rules_classifier
from bot.config import CareConfig
from bot.digests import build_daily, build_weekly
from bot.services import Services
from bot.services.reports import Reports
from bot.stats import EngagementRow, MentionRow
from handlers.digest_blocks import daily_messages, split_text, weekly_messages
from scheduler.core import JobScheduler
from scheduler.stats_jobs import register
from storage.db import Engine
from storage.stats import DigestLog
from storage.tables import Outbox
from tests.stats.seed import TEXTS, seed

SNAPSHOTS = Path(__file__).parent / "snapshots"


def check_snapshot(name: str, payloads: list[dict[str, Any]]) -> None:
    """Compare with ``snapshots/<name>.json`` (``UPDATE_SNAPSHOTS=1`` rewrites it)."""
    for payload in payloads:
        assert len(payload["blocks"]) <= 50
        for block in payload["blocks"]:
            Block.parse(block).validate_json()  # type: ignore[union-attr]
    path = SNAPSHOTS / f"{name}.json"
    text = json.dumps(payloads, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not path.exists():
        path.write_text(text, "utf-8")
    assert json.loads(path.read_text("utf-8")) == json.loads(text)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def configured(care_config: CareConfig, **digests: Any) -> CareConfig:
    stats = care_config.stats.model_copy(update={
        "digests": care_config.stats.digests.model_copy(update={
            "daily_channel": "C0LEADS", "weekly_channel": "C0LEADERSHIP",
            "daily_per_department": True, **digests})})
    return care_config.model_copy(update={"stats": stats})


# -- pure view-models and their blocks ------------------------------------------

DAY = date(2026, 11, 22)


def row(i: int, category: str, text: str, hour: int, *, day: date = DAY, **kw: Any) -> MentionRow:
    at = datetime(day.year, day.month, day.day, hour, i % 60, tzinfo=UTC)
    return MentionRow(id=i, ingested_at=at, source="twitter", author=f"user{i}", text=text,
                      url=f"https://x.example/{i}", lang="en", category=category,
                      department=kw.pop("department", "support"), channel="C0SUPPORT", **kw)


YESTERDAY = [
    row(1, "case", "Sync fails with error 4012 since the update", 8, priority=90,
        author_reach=1200),
    row(2, "case", "error 4012 again when sync runs, help", 9, priority=70),
    row(3, "case", "sync error 4012 on my laptop", 10, priority=60),
    row(4, "rave", "Love the new offline mode, thank you!", 11, priority=20),
    row(5, "rave", "offline mode is brilliant, love it", 12, priority=20),
    row(6, "noise", "nice weather today", 13),
    row(7, "rant", "billing charged me twice, ridiculous", 14, priority=80),
]
DAY_BEFORE = [row(10 + i, "case", "cannot log in", 9, day=DAY - timedelta(days=1))
              for i in range(2)] + [row(20, "rant", "slow app", 9, day=DAY - timedelta(days=1))]


def test_daily_digest_snapshot() -> None:
    engagements = {7: EngagementRow(7, conversion_before="negative", conversion_after="positive")}
    digest = build_daily(scope="Support", department="support", day=DAY, mentions=YESTERDAY,
                         previous=DAY_BEFORE, baseline=DAY_BEFORE, engagements=engagements,
                         notable=2)
    assert digest.total == 7 and digest.previous_total == 3
    assert [(c.category, c.count, c.previous) for c in digest.categories] == [
        ("case", 3, 2), ("rant", 1, 1), ("rave", 2, 0), ("noise", 1, 0)]
    assert [t.label[0] for t in digest.themes] == ["error 4012", "offline mode"]
    assert digest.themes[0].count == 3 and digest.themes[0].example.id == 1
    assert [(n.id, n.reason) for n in digest.notable] == [
        (1, "top priority"), (7, "top priority")]
    check_snapshot("daily_support", daily_messages(digest))


def test_weekly_digest_prefers_starred_then_documented_ranking() -> None:
    week = [row(1, "rfe", "please add calendar sync to the app", 9),
            row(2, "rfe", "calendar sync please, we need it", 10),
            row(3, "rfe", "would be great to have calendar sync", 11),
            row(4, "rave", "support fixed my billing issue in minutes, amazing", 12),
            row(5, "rant", "billing issue again, charged twice", 13),
            row(6, "query", "how do I export my notes as markdown", 14)]
    history = [row(50, "query", "how do I export my notes", 9, day=DAY - timedelta(days=10))]
    unstarred = build_weekly(first_day=DAY - timedelta(days=6), last_day=DAY, week=week,
                             history=history, engagements={}, runners_up=3)
    assert unstarred.starred_count == 0
    # Calendar sync: new (novelty 1) and the most requested theme (demand 1) -> 3.5.
    assert unstarred.top is not None and unstarred.top.mention.id == 1
    assert unstarred.top.score == pytest.approx(3.5)
    assert unstarred.top.mention.reason == "a new theme"
    ids = [i.mention.id for i in unstarred.runners_up]
    assert ids[:2] == [2, 3]
    check_snapshot("weekly_fallback", weekly_messages(unstarred))

    starred = build_weekly(first_day=DAY - timedelta(days=6), last_day=DAY, week=week,
                           history=history, engagements={6: EngagementRow(6, starred=True)})
    assert starred.top is not None and starred.top.mention.id == 6 and starred.top.starred
    assert starred.starred_count == 1
    check_snapshot("weekly_starred", weekly_messages(starred))


def test_long_digests_stay_within_block_kit_limits() -> None:
    many = [row(i, "case", f"problem number {i} with widget{i % 40} and gadget{i % 40} " * 40, 8,
                priority=i) for i in range(1, 200)]
    digest = build_daily(scope="All", department=None, day=DAY, mentions=many, previous=[],
                         baseline=[], engagements={}, top_themes=20, notable=20)
    payloads = daily_messages(digest)
    assert len(payloads) >= 1
    for payload in payloads:
        assert len(payload["blocks"]) <= 50
        for block in payload["blocks"]:
            Block.parse(block).validate_json()  # type: ignore[union-attr]
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= 3000
    assert split_text("a" * 7000) == ["a" * 3000, "a" * 3000, "a" * 1000]
    assert all(len(c) <= 3000 for c in split_text(("line " * 100 + "\n") * 40))


# -- through the database ---------------------------------------------------------


def test_daily_numbers_match_the_seed(engine: Engine, care_config: CareConfig) -> None:
    data = seed(engine)
    now = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
    services = Services(engine=engine, config=care_config,
                        classifier=rules_classifier(care_config), clock=lambda: now)
    digests = Reports(services).daily_digests(date(2026, 11, 22))
    day = [m for m in data.mentions if m.ingested_at.date() == date(2026, 11, 22)]
    before = [m for m in data.mentions if m.ingested_at.date() == date(2026, 11, 21)]
    everything, support = digests[0], next(d for d in digests if d.department == "support")
    assert (everything.total, everything.previous_total) == (len(day), len(before))
    now_counts, before_counts = Counter(m.category for m in day), Counter(
        m.category for m in before)
    assert {c.category: (c.count, c.previous) for c in everything.categories} == {
        c: (now_counts[c], before_counts[c]) for c in set(now_counts) | set(before_counts)}
    assert support.total == sum(1 for m in day if m.department == "support")
    # Support's one seeded text recurs all day: one theme of all of them, in its words.
    [theme] = support.themes
    assert theme.count == support.total
    assert set(" ".join(theme.label).split()) <= set(TEXTS["case"].split())


def test_restart_at_digest_time_sends_once(engine: Engine, care_config: CareConfig) -> None:
    seed(engine)
    config = configured(care_config)
    clock = Clock(datetime(2026, 11, 23, 8, 29, 50, tzinfo=UTC))  # 08:30 Dublin = UTC now

    def replica(name: str) -> JobScheduler:
        services = Services(engine=engine, config=config, classifier=rules_classifier(config),
                            clock=clock)
        scheduler = JobScheduler(engine, owner=name, clock=clock)
        register(scheduler, services)
        return scheduler

    first = replica("a")
    assert ("stats.daily_digest", datetime(2026, 11, 23, 8, 30, tzinfo=UTC)) not in first.tick()
    clock.now = datetime(2026, 11, 23, 8, 30, 5, tzinfo=UTC)
    assert ("stats.daily_digest", datetime(2026, 11, 23, 8, 30, tzinfo=UTC)) in first.tick()
    with Session(engine) as session:
        sent = session.exec(select(Outbox.channel).where(Outbox.kind == "message")).all()
    expected = {"C0LEADS"} | {d.channel for d in config.departments.values()}
    assert set(sent) == expected and len(sent) >= len(expected)

    # A restart (new process, same database) in the same minute, and a second replica.
    clock.now += timedelta(seconds=40)
    assert replica("b").tick() == [] or all(name != "stats.daily_digest"
                                            for name, _ in replica("c").tick())
    # Even if the period's job body ran again (a lease taken over mid-run), nothing is queued.
    services = Services(engine=engine, config=config, classifier=rules_classifier(config),
                        clock=clock)
    again = Reports(services).send_daily(datetime(2026, 11, 23, 8, 30, tzinfo=UTC),
                                         daily_messages)
    assert again.targets == [] and set(again.skipped) == expected
    with Session(engine) as session:
        assert len(session.exec(select(Outbox).where(Outbox.kind == "message")).all()) == len(
            sent)
        logs = session.exec(select(DigestLog)).all()
        assert {(log.kind, log.period) for log in logs} == {("daily", "2026-11-22")}
