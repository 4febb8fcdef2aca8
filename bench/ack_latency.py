"""Button acknowledgement latency under 50 concurrent clicks.

Fifty staff click Claim on the same card at once (signed block_actions to
``POST /slack/events`` of a ``carebot run`` process, as deployed); the time until each
HTTP answer is what Slack measures against its 3 s limit. Baseline in the same
run: 50 concurrent ``GET /healthz`` on the same server (the HTTP floor).
Prints p50/p99 per round and the median over rounds. Target: ack p99 <= 200 ms.

Usage: ``python bench/ack_latency.py [--clicks 50] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from _harness import INGEST_TOKEN, bot_process, median, percentile

from handlers.ids import CardAction, CardRef
from tests.harness.bot_server import SIGNING_SECRET
from tests.harness.signing import block_action, interaction_body, signed_headers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clicks", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    p50s, p99s, b50s, b99s = [], [], [], []
    with bot_process() as (url, fake):
        client = httpx.Client(timeout=10, limits=httpx.Limits(max_connections=args.clicks))
        with ThreadPoolExecutor(max_workers=args.clicks) as pool:
            for round_ in range(args.rounds):
                mention_id = client.post(
                    f"{url}/ingest", headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
                    json={"source": "bench", "id": f"ack-{round_}", "author": "a",
                          "text": "help, it crashes"}).json()["ids"][0]
                [post] = fake.wait_for("chat.postMessage", round_ + 1)[-1:]
                value = CardRef(m=mention_id).dump()
                bodies = [interaction_body(block_action(
                    CardAction.CLAIM, value, user=f"U{i:04d}", channel="C0SUPPORT",
                    message_ts=fake.ts_of(post))) for i in range(args.clicks)]

                def click(body: str) -> float:
                    headers = signed_headers(SIGNING_SECRET, body)
                    t0 = time.perf_counter()
                    response = client.post(f"{url}/slack/events", content=body,
                                           headers=headers)
                    assert response.status_code == 200, response.status_code
                    return time.perf_counter() - t0

                def health(_: int) -> float:
                    t0 = time.perf_counter()
                    assert client.get(f"{url}/healthz").status_code == 200
                    return time.perf_counter() - t0

                base = list(pool.map(health, range(args.clicks)))
                acks = list(pool.map(click, bodies))
                fake.wait_for("chat.postEphemeral", (round_ + 1) * (args.clicks - 1), timeout=30)
                p50s.append(percentile(acks, 50))
                p99s.append(percentile(acks, 99))
                b50s.append(percentile(base, 50))
                b99s.append(percentile(base, 99))
                print(f"round {round_ + 1}: ack p50 {p50s[-1] * 1000:6.1f} ms  p99 "
                      f"{p99s[-1] * 1000:6.1f} ms  | baseline /healthz p50 "
                      f"{b50s[-1] * 1000:6.1f} ms  p99 {b99s[-1] * 1000:6.1f} ms")
        client.close()
    print(f"median of {args.rounds} rounds of {args.clicks} concurrent clicks (SQLite, "
          f"bot in its own process):")
    print(f"  claim ack        p50 {median(p50s) * 1000:6.1f} ms   p99 "
          f"{median(p99s) * 1000:6.1f} ms   (target p99 <= 200 ms)")
    print(f"  baseline healthz p50 {median(b50s) * 1000:6.1f} ms   p99 "
          f"{median(b99s) * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
