"""Slack answers 500 for a full minute, then 429s: nothing is lost or doubled."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.harness.bot_server import BotServer, eventually
from tests.harness.fake_slack import FakeSlack

TEXTS = ["my laptop won't boot since the update, help", "feature request: please add dark mode",
         "love the new sync, thank you", "how do I exclude a folder from the scan?"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_minute_of_500s_then_429s_loses_nothing(bot: BotServer, fake_slack: FakeSlack) -> None:
    fake_slack.fail("chat.postMessage", 500, seconds=60)
    ids: list[int] = []
    for i in range(20):
        ids += bot.ingest({"source": "twitter", "id": f"o{i}", "author": f"u{i}",
                           "text": f"{TEXTS[i % 4]} #{i}"}).json()["ids"]
    assert len(ids) == 20

    def outage_over() -> bool:
        return not any(f.method == "chat.postMessage" and f.status == 500
                       for f in fake_slack.faults)

    eventually(outage_over, timeout=70, interval=0.5)
    fake_slack.fail("chat.postMessage", 429, retry_after=1, times=6)

    def cards() -> Counter:
        return Counter(c.params["metadata"]["event_payload"]["mention_id"]
                       for c in fake_slack.ok_calls("chat.postMessage"))

    eventually(lambda: len(cards()) == 20, timeout=90, interval=0.5)
    statuses = Counter(c.status for c in fake_slack.all_calls("chat.postMessage"))
    assert statuses[500] >= 20 and statuses[429] == 6
    assert sorted(cards()) == sorted(ids)
    assert max(cards().values()) == 1
