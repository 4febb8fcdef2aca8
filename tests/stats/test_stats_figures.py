"""The figures of /care stats equal those computed independently from the seed."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from bot.classify.factory import rules_classifier
from bot.config import CareConfig
from bot.errors import InvalidInput
from bot.services import Services
from bot.services.reports import Reports
from bot.stats import parse_period, parse_stats_args, percentile
from storage.db import Engine
from tests.stats.seed import NOW, seed

DUBLIN = ZoneInfo("Europe/Dublin")


def reports_for(engine: Engine, config: CareConfig, now: datetime = NOW) -> Reports:
    services = Services(engine=engine, config=config, classifier=rules_classifier(config),
                        clock=lambda: now)
    return Reports(services)


def test_periods_are_local_days() -> None:
    summer = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    today = parse_period("today", now=summer, tz=DUBLIN)
    # Dublin is UTC+1 in July: the local day starts at 23:00 UTC the day before.
    assert (today.start, today.end) == (datetime(2026, 6, 30, 23, tzinfo=UTC),
                                        datetime(2026, 7, 1, 23, tzinfo=UTC))
    week = parse_period("7d", now=summer, tz=DUBLIN)
    assert week.end - week.start == timedelta(days=7) and week.end == today.end
    span = parse_period("2026-03-28..2026-03-29", now=summer, tz=DUBLIN)
    assert span.end - span.start == timedelta(hours=47)  # the spring-forward night
    assert week.previous().end == week.start
    # The period before is as many local days, however long they are: the day after
    # Dublin's spring-forward night (a 23-hour day) is compared with that whole night's
    # day, midnight to midnight, not with 24 hours reaching into the day before it.
    monday = parse_period("today", now=datetime(2026, 3, 30, 12, tzinfo=UTC), tz=DUBLIN)
    sunday = monday.previous()
    assert (sunday.start, sunday.end) == (datetime(2026, 3, 29, 0, tzinfo=UTC),
                                          datetime(2026, 3, 29, 23, tzinfo=UTC))
    assert sunday.previous().start == datetime(2026, 3, 28, 0, tzinfo=UTC)
    before_span = span.previous()  # 2026-03-26..27, two 24-hour days
    assert (before_span.start, before_span.end) == (datetime(2026, 3, 26, 0, tzinfo=UTC),
                                                    span.start)
    for bad in ("8x", "0d", "2026-02-30..2026-03-01", "2026-03-02..2026-03-01"):
        with pytest.raises(InvalidInput):
            parse_period(bad, now=summer, tz=DUBLIN)


def test_arguments_in_any_order() -> None:
    query = parse_stats_args(["public", "SUPPORT", "30d"], now=NOW, tz=DUBLIN,
                             departments=["support"], categories=["case"])
    assert query.public and query.department == "support" and query.category is None
    # 30 local days, one of them 25 hours long (Dublin left summer time on 2026-10-25).
    assert query.period.end - query.period.start == timedelta(days=30, hours=1)
    with pytest.raises(InvalidInput, match="neither a range"):
        parse_stats_args(["bogus"], now=NOW, tz=DUBLIN, departments=["support"],
                         categories=["case"])
    # Two departments (or two categories) are refused, not silently the last one.
    with pytest.raises(InvalidInput, match="One department at a time: `support` or `docs`"):
        parse_stats_args(["support", "7d", "docs"], now=NOW, tz=DUBLIN,
                         departments=["support", "docs"], categories=["case"])
    with pytest.raises(InvalidInput, match="One category at a time"):
        parse_stats_args(["case", "rant"], now=NOW, tz=DUBLIN, departments=["support"],
                         categories=["case", "rant"])
    repeated = parse_stats_args(["support", "Support", "case"], now=NOW, tz=DUBLIN,
                                departments=["support"], categories=["case"])
    assert (repeated.department, repeated.category) == ("support", "case")


def test_nearest_rank_percentile_matches_numpy() -> None:
    values = [7.0, 1.0, 3.0, 15.0, 4.0, 9.0, 2.0]
    for p in (10, 50, 90, 100):
        assert percentile(values, p) == np.percentile(values, p, method="inverted_cdf")
    assert percentile([], 50) is None


def test_stats_equal_independent_computation(engine: Engine, care_config: CareConfig) -> None:
    data = seed(engine)
    reports = reports_for(engine, care_config)
    query = reports.parse(["7d"])
    report = reports.stats(query)

    start, end = query.period.start, query.period.end
    chosen = [m for m in data.mentions if start <= m.ingested_at < end]
    assert report.total == len(chosen) > 100
    assert report.by_category == dict(sorted(Counter(m.category for m in chosen).items(),
                                             key=lambda kv: (-kv[1], kv[0])))
    assert report.by_lang["-"] == sum(1 for m in chosen if m.lang is None)
    assert sum(report.by_department.values()) == len(chosen)
    assert report.by_source == dict(sorted(Counter(m.source for m in chosen).items(),
                                           key=lambda kv: (-kv[1], kv[0])))

    def minutes(m):  # noqa: ANN001, ANN202
        responded = data.engagements[m.id].first_response_at
        return None if responded is None else (responded - m.ingested_at).total_seconds() / 60

    answered = [minutes(m) for m in chosen if minutes(m) is not None]
    ordered = sorted(answered)
    assert report.ttfr_p50 == ordered[math.ceil(0.5 * len(ordered)) - 1]
    assert report.ttfr_p90 == ordered[math.ceil(0.9 * len(ordered)) - 1]
    sla = {c.value: v for c, v in care_config.sla_minutes.items()}
    with_sla = [(m, minutes(m)) for m in chosen if minutes(m) is not None and m.category in sla]
    # Misses: answered late, or unanswered (and unresolved) past the target by now.
    overdue = [m for m in chosen if m.category in sla and minutes(m) is None
               and data.engagements[m.id].resolved_at is None
               and (NOW - m.ingested_at).total_seconds() / 60 > sla[m.category]]
    assert len(overdue) > 10
    assert report.within_sla == pytest.approx(
        sum(1 for m, v in with_sla if v <= sla[m.category]) / (len(with_sla) + len(overdue)))
    case = next(s for s in report.sla if s.category == "case")
    case_minutes = sorted(v for m, v in with_sla if m.category == "case")
    assert (case.responses, case.p90) == (len(case_minutes),
                                         float(np.percentile(case_minutes, 90,
                                                             method="inverted_cdf")))

    actionable = [m for m in chosen if m.category != "noise"]
    responded = [m for m in actionable if minutes(m) is not None]
    assert (report.actionable, report.responded) == (len(actionable), len(responded))
    assert report.response_rate == pytest.approx(len(responded) / len(actionable))

    scores = [data.conversions[m.id].score for m in chosen if m.id in data.conversions]
    assert report.conversion_n == len(scores) > 0
    assert report.conversion_avg == pytest.approx(sum(scores) / len(scores))
    before = [data.conversions[m.id].score for m in data.mentions
              if start - (end - start) <= m.ingested_at < start and m.id in data.conversions]
    assert report.conversion_trend == pytest.approx(sum(scores) / len(scores)
                                                    - sum(before) / len(before))

    history: dict[int, list] = {}
    for c in data.classifications:
        history.setdefault(c.mention_id, []).append(c)
    automated = [m for m in chosen if history[m.id][0].confidence >= 0.6]
    corrected = [m for m in automated
                 if any(c.method == "human" and c.category != history[m.id][0].category
                        for c in history[m.id][1:])]
    assert (report.classified, report.automated, report.reclassified) == (
        len(chosen), len(automated), len(corrected))
    assert 0 < len(corrected) < len(automated)
    assert report.automation_precision == pytest.approx(1 - len(corrected) / len(automated))

    alice = next(a for a in report.agents if a.user == "U0ALICE")
    claims = [m for m in chosen if data.engagements[m.id].claimed_by == "U0ALICE"]
    answered_by_alice = sorted(minutes(m) for m in claims if minutes(m) is not None)
    assert (alice.claimed, alice.responded) == (len(claims), len(answered_by_alice))
    assert alice.ttfr_p50 == answered_by_alice[math.ceil(0.5 * len(answered_by_alice)) - 1]

    assert report.exceptions == {"#brandfail": sum(1 for m in chosen if "#brandfail" in m.text)}
    heat = Counter((m.ingested_at.astimezone(DUBLIN).weekday(),
                    m.ingested_at.astimezone(DUBLIN).hour) for m in chosen)
    assert all(report.heatmap[d][h] == heat[(d, h)] for d in range(7) for h in range(24))


def test_filter_by_department_and_category(engine: Engine, care_config: CareConfig) -> None:
    data = seed(engine)
    reports = reports_for(engine, care_config)
    support = reports.stats(reports.parse(["support", "30d"]))
    query = reports.parse(["30d"])
    assert support.total == sum(1 for m in data.mentions if m.department == "support"
                                and query.period.start <= m.ingested_at < query.period.end)
    assert set(support.by_department) == {"support"}
    rants = reports.stats(reports.parse(["rant", "today"]))
    today = [m for m in data.mentions if m.ingested_at.date() == date(2026, 11, 23)]
    assert rants.total == sum(1 for m in today if m.category == "rant")
