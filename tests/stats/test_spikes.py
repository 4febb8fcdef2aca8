"""Spike and exception alerts: one storm, one alert, within five simulated minutes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from bot.classify.factory import rules_classifier
from bot.config import CareConfig
from bot.services import Services
from bot.spikes import SpikeRules, Watch, detect
from bot.stats import MentionRow
from scheduler.core import JobScheduler
from scheduler.stats_jobs import SPIKES, register
from storage.db import Engine, session_scope
from storage.stats import SpikeState
from storage.tables import Mention, Outbox

T0 = datetime(2026, 11, 23, 14, 0, 30, tzinfo=UTC)  # the storm starts
STEADY = ["case", "query", "rave", "lead"]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def add(engine: Engine, rows: list[tuple[datetime, str, str]]) -> None:
    with session_scope(engine) as session:
        first = len(session.exec(select(Mention.id)).all())
        for n, (at, category, text) in enumerate(rows, start=first):
            session.add(Mention(source="twitter", external_id=f"e{n}", author=f"a{n}",
                                text=text, url=f"https://x.example/{n}", ingested_at=at,
                                stage="routed", category=category, confidence=0.9))


def steady(engine: Engine, until: datetime) -> None:
    """A day of ordinary traffic: one Nimbus mention every three minutes."""
    start = until - timedelta(hours=25)
    rows = []
    for i in range(int((until - start) / timedelta(minutes=3))):
        category = STEADY[i % len(STEADY)]
        rows.append((start + timedelta(minutes=3 * i), category, f"nimbus {category} number {i}"))
    add(engine, rows)


def alerts(engine: Engine, channel: str) -> list[Outbox]:
    with Session(engine) as session:
        return list(session.exec(select(Outbox).where(Outbox.kind == "message",
                                                      Outbox.channel == channel)
                                 .order_by(col(Outbox.id))))


def scheduler_for(engine: Engine, config: CareConfig, clock: Clock) -> JobScheduler:
    services = Services(engine=engine, config=config, classifier=rules_classifier(config),
                        clock=clock)
    scheduler = JobScheduler(engine, owner="replica", clock=clock)
    register(scheduler, services)
    scheduler.jobs = {SPIKES: scheduler.jobs[SPIKES]}
    return scheduler


def test_spike_in_steady_traffic_alerts_once(engine: Engine, care_config: CareConfig) -> None:
    steady(engine, T0 + timedelta(minutes=40))
    # The storm: four "login broken" cases a minute for 25 minutes.
    add(engine, [(T0 + timedelta(seconds=15 * k), "case", f"nimbus login broken again {k}")
                 for k in range(4 * 25)])
    clock = Clock(T0 - timedelta(minutes=10))
    scheduler = scheduler_for(engine, care_config, clock)
    first_alert_at = None
    while clock.now < T0 + timedelta(minutes=40):
        scheduler.tick()
        if first_alert_at is None and alerts(engine, "C0TRIAGE"):
            first_alert_at = clock.now
        clock.now += timedelta(minutes=1)
    [alert] = alerts(engine, "C0TRIAGE")
    assert first_alert_at is not None and first_alert_at - T0 <= timedelta(minutes=5)
    text = "\n".join(b["text"]["text"] for b in alert.payload["blocks"] if b["type"] == "section")
    assert "brand *Nimbus*" in text
    # The storm also made "case" hot a minute later: the same storm, not a second alert.
    with Session(engine) as session:
        states = {s.key: s.alerts for s in session.exec(select(SpikeState))}
    assert states["brand:Nimbus"] == 1 and states["category:case"] == 0
    assert "nimbus login broken again" in text and "https://x.example/" in text
    assert alert.payload["text"].startswith("Spike:")


def test_exception_hashtag_alerts_once_per_cooldown(engine: Engine,
                                                    care_config: CareConfig) -> None:
    steady(engine, T0 + timedelta(hours=3))
    add(engine, [(T0, "rant", "nimbus ate my files #BrandFail"),
                 (T0 + timedelta(minutes=20), "rant", "still broken #brandfail"),
                 (T0 + timedelta(minutes=140), "rant", "and again #brandfail")])
    clock = Clock(T0)
    scheduler = scheduler_for(engine, care_config, clock)
    for minute in [*range(-2, 26), *range(136, 146)]:  # around each exception mention
        clock.now = T0 + timedelta(minutes=minute)
        scheduler.tick()
    found = alerts(engine, "C0TRIAGE")
    # 20 minutes later is the same storm (cooldown 60 min); 140 minutes later is a new one.
    assert [a.created_at - T0 <= timedelta(minutes=5) for a in found] == [True, False]
    assert all(a.payload["text"] == "Exception: exception:#brandfail" for a in found)
    assert T0 + timedelta(minutes=140) <= found[1].created_at <= T0 + timedelta(minutes=142)


def test_no_baseline_no_spike_but_exceptions_still_alert() -> None:
    rules = SpikeRules()
    watch = Watch(brands={"Nimbus": ["nimbus"]}, exception_hashtags=["#brandfail"])
    burst = [MentionRow(id=i, ingested_at=T0 + timedelta(seconds=10 * i), category="case",
                        text="nimbus down #brandfail" if i == 0 else "nimbus down")
             for i in range(8)]
    # A fresh installation: eight cases in a minute, but nothing to compare them with.
    assert [s.key for s in detect(burst, now=T0 + timedelta(minutes=2), watch=watch,
                                  rules=rules)] == ["exception:#brandfail"]
    history = [MentionRow(id=100 + i, ingested_at=T0 - timedelta(minutes=20 + 10 * i),
                          category="query", text="how do i export")
               for i in range(rules.min_history)]
    keys = {s.key for s in detect(burst + history, now=T0 + timedelta(minutes=2), watch=watch,
                                  rules=rules)}
    assert keys == {"exception:#brandfail", "category:case", "brand:Nimbus"}
