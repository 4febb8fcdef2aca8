"""Click -> ``views.open`` latency for the card's modals (Respond), under concurrency.

A modal must be opened with the click's ``trigger_id`` within 3 s, so the
handler acks and opens it before anything else. N staff click Respond on
different cards at once; for each, the time from sending the signed
block_action to the fake Slack receiving ``views.open`` is measured. Prints
p50/p99 per round and the median over rounds. Target: p99 well under 3 s.

Usage: ``python bench/modal_latency.py [--clicks 20] [--rounds 3] [--database-url URL]``
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from _harness import median, percentile, running_bot

from handlers.ids import CardAction, CardRef
from tests.harness.bot_server import SIGNING_SECRET
from tests.harness.signing import block_action, interaction_body, signed_headers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    p50s, p99s = [], []
    with running_bot(database_url=args.database_url, rate=50) as (bot, fake):
        client = httpx.Client(timeout=10, limits=httpx.Limits(max_connections=args.clicks))
        cards: list[tuple[int, str]] = []
        for i in range(args.clicks):
            mention_id = bot.ingest({"source": "bench", "id": f"modal-{i}", "author": "a",
                                     "text": "help, it crashes"}).json()["ids"][0]
            post = fake.wait_for("chat.postMessage", i + 1, timeout=60)[-1]
            cards.append((mention_id, fake.ts_of(post)))
        starts: dict[int, int] = {}
        with ThreadPoolExecutor(max_workers=args.clicks) as pool:
            for round_ in range(args.rounds):
                def click(card: tuple[int, str], round_: int = round_) -> float:
                    mention_id, ts = card
                    user = f"U{round_:02d}{mention_id:04d}"
                    body = interaction_body(block_action(
                        CardAction.RESPOND, CardRef(m=mention_id).dump(), user=user,
                        channel="C0SUPPORT", message_ts=ts))
                    t0 = time.perf_counter()
                    response = client.post(f"{bot.url}/slack/events", content=body,
                                           headers=signed_headers(SIGNING_SECRET, body))
                    assert response.status_code == 200, response.status_code
                    start = starts[round_]
                    fake.wait_for("views.open", where=lambda c: fake.calls.index(c) >= start
                                  and json.loads(c.params["view"]["private_metadata"])["m"]
                                  == mention_id, timeout=10)
                    return time.perf_counter() - t0

                before = len(fake.ok_calls("views.open"))
                starts[round_] = len(fake.calls)
                t0 = time.perf_counter()
                pool_results = list(pool.map(click, cards))
                fake.wait_for("views.open", before + args.clicks, timeout=30)
                wall = time.perf_counter() - t0
                p50s.append(percentile(pool_results, 50))
                p99s.append(percentile(pool_results, 99))
                print(f"round {round_ + 1}: click->views.open p50 {p50s[-1] * 1000:6.1f} ms  "
                      f"p99 {p99s[-1] * 1000:6.1f} ms  (all {args.clicks} in {wall:.2f} s)")
        client.close()
    print(f"median of {args.rounds} rounds of {args.clicks} concurrent Respond clicks "
          f"({args.database_url or 'SQLite'}): p50 {median(p50s) * 1000:.1f} ms, "
          f"p99 {median(p99s) * 1000:.1f} ms (limit: trigger_id expires after 3 s)")


if __name__ == "__main__":
    main()
