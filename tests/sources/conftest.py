"""Fixtures for the listening-source tests: a local API server, a clock, a poller."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.classify.factory import rules_classifier
from bot.config import CareConfig
from bot.services import Services
from bot.sources.poller import Poller
from storage.db import Engine


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2025, 11, 23, 12, 30, tzinfo=UTC))


def with_sources(care_config: CareConfig, sources: list[dict[str, Any]],
                 **extra: Any) -> CareConfig:
    """The care config with a ``sources:`` section, validated like the YAML is."""
    data = care_config.model_dump(mode="json")
    data["sources"] = sources
    data.update(extra)
    return CareConfig.model_validate(data)


PollerFactory = Callable[..., Poller]


@pytest.fixture
def make_poller(engine: Engine, care_config: CareConfig, clock: Clock
                ) -> Iterator[PollerFactory]:
    made: list[Poller] = []

    def make(sources: list[dict[str, Any]], *, environ: dict[str, str] | None = None,
             **extra: Any) -> Poller:
        config = with_sources(care_config, sources, **extra)
        services = Services(engine=engine, config=config, classifier=rules_classifier(config),
                            clock=clock)
        poller = Poller.from_services(services, environ=environ or {})
        made.append(poller)
        return poller

    yield make
    for poller in made:
        poller.close()
