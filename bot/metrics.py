"""Prometheus metrics of one runtime, in its own registry (``GET /metrics``).

Counters and histograms count what this process did (ingested, classified,
posted, Slack API errors, source errors, ingest→post latency); the queue
gauges are read from the database at scrape time by :class:`DatabaseCollector`,
so every replica reports the same depths. Every series carries a ``replica``
label. Nothing here is global: tests build many runtimes side by side.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.config import CareConfig

if TYPE_CHECKING:
    from storage.observability import QueueSnapshot

log = logging.getLogger(__name__)

#: Ingest → card posted, in seconds: from "instant" to "Slack was down for a while".
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


def channel_kind(config: CareConfig, channel: str) -> str:
    """``department``, ``triage``, ``dm`` or ``other`` — a label with few values."""
    if channel == config.triage_channel:
        return "triage"
    if any(d.channel == channel for d in config.departments.values()):
        return "department"
    if channel[:1] in ("U", "W", "D"):
        return "dm"
    return "other"


class Metrics:
    """The metrics one runtime updates. Methods are the only way to touch them.

    Args:
        replica: this process's id, the ``replica`` label of every series.
        registry: where the metrics live; a fresh ``CollectorRegistry`` by default.
    """

    def __init__(self, *, replica: str = "local", registry: CollectorRegistry | None = None):
        self.replica = replica
        self.registry = registry or CollectorRegistry()
        r = self.registry
        Info("carebot_replica", "This carebot process.", registry=r).info({"replica": replica})
        self._ingested = Counter("carebot_mentions_ingested", "New mentions stored, by source.",
                                 ["replica", "source"], registry=r)
        self._duplicates = Counter("carebot_mentions_duplicate",
                                   "Mentions received again (same source and id), not stored.",
                                   ["replica"], registry=r)
        self._classified = Counter("carebot_mentions_classified",
                                   "Mentions classified, by category and method.",
                                   ["replica", "category", "method"], registry=r)
        self._posted = Counter("carebot_slack_posted",
                               "Outbox items delivered to Slack, by kind and channel kind.",
                               ["replica", "kind", "channel_kind"], registry=r)
        self._latency = Histogram("carebot_ingest_to_post_seconds",
                                  "Time from a mention being stored to its card being posted.",
                                  ["replica"], buckets=LATENCY_BUCKETS, registry=r)
        self._slack_errors = Counter("carebot_slack_api_errors",
                                     "Failed Slack Web API calls, by method and HTTP status.",
                                     ["replica", "method", "status"], registry=r)
        self._source_errors = Counter("carebot_source_errors",
                                      "Failed polls of a listening source.",
                                      ["replica", "source"], registry=r)

    # -- updates -------------------------------------------------------------

    def ingested(self, by_source: dict[str, int], *, duplicates: int = 0) -> None:
        for source, n in by_source.items():
            if n:
                self._ingested.labels(self.replica, source).inc(n)
        if duplicates:
            self._duplicates.labels(self.replica).inc(duplicates)

    def classified(self, *, category: str, method: str) -> None:
        self._classified.labels(self.replica, category, method or "unknown").inc()

    def posted(self, *, kind: str, channel_kind: str, latency: float | None = None) -> None:
        self._posted.labels(self.replica, kind, channel_kind).inc()
        if latency is not None:
            self._latency.labels(self.replica).observe(max(0.0, latency))

    def slack_error(self, *, method: str, status: str) -> None:
        self._slack_errors.labels(self.replica, method, status).inc()

    def source_error(self, source: str) -> None:
        self._source_errors.labels(self.replica, source).inc()

    # -- exposition ------------------------------------------------------------

    def watch(self, snapshot: Callable[[], QueueSnapshot]) -> None:
        """Report the queues ``snapshot`` reads (from the database) at every scrape."""
        self.registry.register(DatabaseCollector(snapshot, replica=self.replica))

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class DatabaseCollector(Collector):
    """Queue depths and source health, counted in the database when scraped.

    A database that cannot be reached does not fail the scrape: the other
    metrics are still served, with ``carebot_database_up 0``.
    """

    def __init__(self, snapshot: Callable[[], QueueSnapshot], *, replica: str) -> None:
        self.snapshot = snapshot
        self.replica = replica

    def describe(self) -> Iterable[Metric]:
        return []  # computed at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("carebot_database_up",
                               "1 when the queue depths below could be read.",
                               labels=["replica"])
        try:
            snap = self.snapshot()
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail with the DB
            log.warning("metrics: database not readable (%s)", type(exc).__name__)
            up.add_metric([self.replica], 0)
            yield up
            return
        up.add_metric([self.replica], 1)
        yield up
        new = GaugeMetricFamily("carebot_queue_mentions",
                                "Mentions per pipeline stage (new = waiting to be classified).",
                                labels=["replica", "stage"])
        for stage in sorted({"new", *snap.mentions_by_stage}):
            new.add_metric([self.replica, stage], snap.mentions_by_stage.get(stage, 0))
        yield new
        outbox = GaugeMetricFamily("carebot_queue_outbox", "Slack outbox items by status.",
                                   labels=["replica", "status"])
        for status in sorted({"pending", "parked", *snap.outbox_by_status}):
            outbox.add_metric([self.replica, status], snap.outbox_by_status.get(status, 0))
        yield outbox
        failures = GaugeMetricFamily("carebot_source_consecutive_failures",
                                     "Failed polls in a row, per listening source.",
                                     labels=["replica", "source"])
        for source, n in sorted(snap.source_failures.items()):
            failures.add_metric([self.replica, source], n)
        yield failures
        items = CounterMetricFamily("carebot_source_items",
                                    "Items per listening source and outcome (fetched, "
                                    "ingested, duplicate, noise:<reason>...), all replicas.",
                                    labels=["replica", "source", "outcome"])
        for source, counts in sorted(snap.source_counters.items()):
            for outcome, n in sorted(counts.items()):
                items.add_metric([self.replica, source, outcome], n)
        yield items
