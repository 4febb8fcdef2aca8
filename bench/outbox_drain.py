"""Drain a burst of 1,000 mentions spread over several channels against Slack's
per-channel pacing limit, and count what arrived.

The pacing limit is ``rate`` messages/s per channel (Slack allows about 1); with
``channels`` busy channels the ideal drain rate is ``rate * channels``. Prints the
measured drain rate as a share of that limit (target >= 90 %) and the loss and
duplicate counts (target 0), median over runs. The baseline in the same run is
the fake Slack's own capacity: the same number of bare chat.postMessage calls
from one thread, unpaced.

Usage: ``python bench/outbox_drain.py [--n 1000] [--rate 1] [--runs 3] [--database-url URL]``
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from _harness import median, running_bot
from slack_sdk import WebClient

TEXTS = {
    "C0SUPPORT": "my laptop won't boot since the update, help",
    "C0DOCS": "how do I exclude a folder from the scan?",
    "C0COMMS": "worst update ever, never again #fail",
    "C0MARKETING": "love the new sync, thank you",
    "C0SALES": "what is the pricing for 50 licenses for our team",
    "C0PRODUCT": "feature request: please add dark mode",
    "C0LEGAL": "phishing emails and a fake key sold on ebay",
    "C0TRIAGE": "saw a nice cloud today",
}


def one_run(n: int, rate: float, database_url: str | None, run: int) -> dict[str, float]:
    channels = list(TEXTS)
    with running_bot(rate=rate, database_url=database_url, poll=0.05) as (bot, fake):
        client = WebClient(token="xoxb-bench", base_url=fake.url)
        t0 = time.perf_counter()
        for i in range(n):
            client.chat_postMessage(channel="C0BASE", text=f"baseline {i}")
        baseline = n / (time.perf_counter() - t0)

        mentions = [{"source": "bench", "id": f"d{run}-{i}", "author": f"u{i}",
                     "text": f"{TEXTS[channels[i % len(channels)]]} #{i}"} for i in range(n)]
        start_calls = len(fake.ok_calls("chat.postMessage"))
        t0 = time.perf_counter()
        for i in range(0, n, 100):
            assert bot.ingest(mentions[i:i + 100]).status_code == 202
        fake.wait_for("chat.postMessage", start_calls + n, timeout=n / rate + 120)
        elapsed = time.perf_counter() - t0
        time.sleep(1.0)
        cards = [c for c in fake.ok_calls("chat.postMessage")
                 if (c.params.get("metadata") or {}).get("event_type") == "carebot_card"]
        ids = Counter(c.params["metadata"]["event_payload"]["mention_id"] for c in cards)
        limit = rate * len(channels)
        return {"drain": n / elapsed, "limit": limit, "share": n / elapsed / limit,
                "lost": n - len(ids), "dupes": sum(v - 1 for v in ids.values()),
                "seconds": elapsed, "baseline": baseline}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    results = []
    for run in range(args.runs):
        r = one_run(args.n, args.rate, args.database_url, run)
        results.append(r)
        print(f"run {run + 1}: {args.n} cards in {r['seconds']:.1f} s = {r['drain']:.2f} msg/s "
              f"of a {r['limit']:.1f} msg/s pacing limit ({r['share']:.1%}); lost {r['lost']}, "
              f"duplicates {r['dupes']}  | baseline unpaced {r['baseline']:.0f} msg/s")
    print(f"median of {args.runs} runs ({args.database_url or 'SQLite'}, 8 channels, "
          f"{args.rate:g} msg/s per channel):")
    print(f"  drain {median([r['drain'] for r in results]):.2f} msg/s = "
          f"{median([r['share'] for r in results]):.1%} of the pacing limit (target >= 90 %); "
          f"lost {max(r['lost'] for r in results)}, duplicates "
          f"{max(r['dupes'] for r in results)} (target 0)")
    print(f"  baseline: the fake Slack takes {median([r['baseline'] for r in results]):.0f} "
          f"msg/s unpaced from one thread")


if __name__ == "__main__":
    main()
