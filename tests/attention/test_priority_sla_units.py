"""The pure parts: priority score, SLA targets and states, CSV and CRM customer data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot import priority as prio
from bot import sla
from bot.config import AttentionConfig, CareConfig
from bot.customers import HttpCustomerLookup, read_customers_csv
from bot.errors import InvalidInput

CFG = AttentionConfig()


def test_who_the_author_is_outweighs_how_loud_the_text_is() -> None:
    angry_stranger = prio.score(prio.PriorityInput(category="rant", sentiment="negative",
                                                   reach=500), CFG)
    calm_key_customer = prio.score(prio.PriorityInput(category="query", sentiment="neutral",
                                                      tier="platinum", watch_lists=("mvp",)),
                                   CFG)
    assert calm_key_customer.score > angry_stranger.score
    # Loudness alone never reaches the escalation bar.
    assert angry_stranger.score < CFG.sla.escalation_min_priority
    top = prio.score(prio.PriorityInput(category="fraud", sentiment="negative", tier="platinum",
                                        reach=10**7, reputation=1.0, watch_lists=("mvp",)), CFG)
    assert top.score == 100
    assert prio.score(prio.PriorityInput(category="noise", sentiment="positive"), CFG).score == 0


def test_weights_are_configurable_and_explainable() -> None:
    loud = AttentionConfig.model_validate({"priority": {"weights": {
        "tier": 0, "watch": 0, "reach": 0, "reputation": 0, "category": 0, "sentiment": 1}}})
    assert prio.score(prio.PriorityInput(category="case", sentiment="negative"), loud).score == 100
    result = prio.score(prio.PriorityInput(category="case", reach=100_000), CFG)
    assert result.factors["reach"] == 1.0 and result.factors["category"] == 0.9
    assert result.outbox_priority == result.score // 10
    assert prio.reach_factor(1000, 100_000) == pytest.approx(0.6, abs=0.01)


def test_entitlement_is_a_watch_list_or_an_entitled_tier() -> None:
    assert prio.is_entitled(tier=None, watch_lists=["custom"], config=CFG)
    assert prio.is_entitled(tier="gold", watch_lists=[], config=CFG)
    assert not prio.is_entitled(tier="bronze", watch_lists=[], config=CFG)


def test_sla_targets_by_tier_then_category_then_default(care_config: CareConfig) -> None:
    data = care_config.model_dump(mode="json")
    data["sla_minutes"] = {"rant": 30}
    data["attention"] = {"sla": {"tiers": {"platinum": {"rant": 10}}}}
    config = CareConfig.model_validate(data)
    assert sla.target_minutes("rant", "platinum", config) == 10
    assert sla.target_minutes("rant", "gold", config) == 30
    assert sla.target_minutes("case", None, config) == 5  # the default for cases
    assert sla.target_minutes("rave", None, config) is None
    assert sla.target_minutes("noise", None, config) is None


def test_sla_states_warn_at_75_percent_and_breach_at_100() -> None:
    start = datetime(2026, 11, 23, 9, tzinfo=UTC)

    def at(seconds: float, answered: datetime | None = None) -> sla.SlaStatus:
        return sla.evaluate(started_at=start, target=5, now=start + timedelta(seconds=seconds),
                            warn_fraction=0.75, answered_at=answered).status

    assert at(224) == sla.SlaStatus.OK
    assert at(225) == sla.SlaStatus.WARNING
    assert at(299) == sla.SlaStatus.WARNING
    assert at(300) == sla.SlaStatus.BREACHED
    assert at(900, answered=start + timedelta(minutes=4)) == sla.SlaStatus.MET
    assert at(900, answered=start + timedelta(minutes=6)) == sla.SlaStatus.BREACHED


def test_customer_csv_reports_bad_rows_and_keeps_good_ones(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("Customer_ID,Name,Tier,Handles,extra\n"
                    "C-1,Acme,Gold,\"twitter:@Acme_IT; anna\",x\n"
                    "C-2,,,,\n"
                    "C-3,X,gold,twitter:\n", encoding="utf-8")
    rows, problems = read_customers_csv(path)
    assert [(r.external_id, r.tier, r.handles) for r in rows] == [
        ("C-1", "gold", (("twitter", "acme_it"), ("*", "anna"))), ("C-2", None, ())]
    assert problems == ["line 4: bad handle 'twitter:'"]
    (tmp_path / "bad.csv").write_text("id,tier\n1,gold\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="customer_id"):
        read_customers_csv(tmp_path / "bad.csv")
    # A quoted handle list spanning lines is one record, numbered by its first line;
    # a quote left open is an error naming its line, not a file cut short.
    path.write_text('customer_id,handles\nC-1,"anna\nbob"\nC-2,carl\nC-3,"dana\nC-4,erik\n')
    with pytest.raises(InvalidInput, match=r"c\.csv line 5: a quoted field opened here is "
                                           r"never closed"):
        read_customers_csv(path)
    path.write_text('customer_id,tier,handles\nC-1,gold,"anna\nbob"\nC-2,bad tier,carl\n')
    rows, problems = read_customers_csv(path)
    assert [(r.external_id, r.handles) for r in rows] == [("C-1", (("*", "anna"), ("*", "bob")))]
    assert problems == ["line 4: tier 'bad tier' must be a short word like gold"]


def test_crm_lookup_maps_answers_and_survives_failures() -> None:
    seen: list[httpx.Request] = []

    def crm(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        handle = request.url.params["handle"]
        if handle == "known":
            return httpx.Response(200, json={"customer_id": "C-9", "tier": "Platinum",
                                             "name": "Known Co"})
        if handle == "down":
            return httpx.Response(503)
        if handle == "garbage":
            return httpx.Response(200, content=b"<html>")
        return httpx.Response(404)

    config = AttentionConfig.model_validate(
        {"customer_lookup": {"url": "https://crm.example/lookup"}}).customer_lookup
    lookup = HttpCustomerLookup(config, transport=httpx.MockTransport(crm))
    row = lookup("twitter", "known")
    assert row is not None and row.tier == "platinum" and row.handles == (("twitter", "known"),)
    assert lookup("twitter", "stranger") is None
    assert lookup("twitter", "down") is None
    assert lookup("twitter", "garbage") is None
    assert seen[0].url.params["source"] == "twitter"
