"""Ingest → card latency when idle: POST /ingest until the fake Slack records the
card's chat.postMessage, one mention at a time.

Baseline in the same run: a bare ``chat.postMessage`` from slack_sdk's WebClient to
the same fake Slack — the floor any design pays for the Slack call itself.
Prints p50/p95 per run and the median over runs. Target: p95 <= 1 s.

Usage: ``python bench/ingest_latency.py [--n 40] [--runs 3] [--database-url URL]``
"""

from __future__ import annotations

import argparse
import time

from _harness import median, percentile, running_bot
from slack_sdk import WebClient

TEXT = "my laptop won't boot since the update, help"


def one_run(n: int, database_url: str | None, run: int) -> tuple[list[float], list[float]]:
    with running_bot(database_url=database_url, rate=50) as (bot, fake):
        client = WebClient(token="xoxb-bench", base_url=fake.url)
        base: list[float] = []
        for i in range(n):
            t0 = time.perf_counter()
            client.chat_postMessage(channel="C0BASE", text=f"baseline {i}")
            base.append(time.perf_counter() - t0)
        latencies: list[float] = []
        for i in range(n):
            before = len(fake.ok_calls("chat.postMessage"))
            t0 = time.perf_counter()
            response = bot.ingest({"source": "bench", "id": f"r{run}-{i}", "author": "a",
                                   "text": f"{TEXT} #{i}"})
            assert response.status_code == 202, response.text
            fake.wait_for("chat.postMessage", before + 1, timeout=10)
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.05)  # idle between mentions
        return latencies, base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    p50s, p95s, b50s, b95s = [], [], [], []
    for run in range(args.runs):
        lat, base = one_run(args.n, args.database_url, run)
        p50s.append(percentile(lat, 50))
        p95s.append(percentile(lat, 95))
        b50s.append(percentile(base, 50))
        b95s.append(percentile(base, 95))
        print(f"run {run + 1}: ingest->card p50 {p50s[-1] * 1000:7.1f} ms  "
              f"p95 {p95s[-1] * 1000:7.1f} ms   |  baseline chat.postMessage p50 "
              f"{b50s[-1] * 1000:6.1f} ms  p95 {b95s[-1] * 1000:6.1f} ms")
    print(f"median of {args.runs} runs ({args.n} mentions each, "
          f"{args.database_url or 'SQLite'}):")
    print(f"  carebot ingest->card   p50 {median(p50s) * 1000:7.1f} ms   "
          f"p95 {median(p95s) * 1000:7.1f} ms   (target p95 <= 1000 ms)")
    print(f"  baseline postMessage   p50 {median(b50s) * 1000:7.1f} ms   "
          f"p95 {median(b95s) * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
