"""Audit: scheduled digests where real configurations differ from the default one."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session, select

from bot.classify.factory import rules_classifier
from bot.config import CareConfig
from bot.services import Services
from bot.services.reports import Queued, Reports
from handlers.digest_blocks import daily_messages
from storage.db import Engine
from storage.tables import Outbox
from tests.stats.seed import seed
from tests.stats.test_digests import configured


def test_two_departments_sharing_a_channel_each_get_their_daily_digest(
        engine: Engine, care_config: CareConfig) -> None:
    """Support and Docs both post into one #care channel: Docs' newsletter was
    dropped as "already sent" while the once-per-period record was per channel.
    Each newsletter is still sent once: a second run of the job queues nothing."""
    seed(engine)
    config = configured(care_config)
    departments = {name: dept.model_copy(update={"channel": "C0CARE"})
                   if name in ("support", "docs") else dept
                   for name, dept in config.departments.items()}
    config = config.model_copy(update={"departments": departments})
    now = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
    services = Services(engine=engine, config=config, classifier=rules_classifier(config),
                        clock=lambda: now)
    queued = Reports(services).send_daily(now, daily_messages)
    assert queued.skipped == []
    with Session(engine) as session:
        titles = [o.payload["text"] for o in session.exec(
            select(Outbox).where(Outbox.channel == "C0CARE"))]
    assert any("— Support —" in t for t in titles) and any("— Docs —" in t for t in titles)
    again = Reports(services).send_daily(now, daily_messages)
    assert again.targets == [] and sorted(again.skipped) == sorted(queued_channels(queued))
    with Session(engine) as session:
        assert len(session.exec(select(Outbox).where(Outbox.channel == "C0CARE")).all()) \
            == len(titles)


def queued_channels(queued: Queued) -> list[str]:
    return [channel for channel, _count in queued.targets]
