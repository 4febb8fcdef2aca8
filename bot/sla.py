"""First-response SLA: targets and where a mention stands against them. Pure; no I/O.

A mention's clock starts when carebot receives it (``ingested_at``): carebot
cannot answer what it has not seen, and a source that delivers late would
otherwise breach on arrival. The clock stops at the first response.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.config import CareConfig

#: Used when neither the tier nor the category has a target configured.
DEFAULT_TARGETS: dict[str, int] = {"case": 5}

#: Categories that never have a first-response target.
NO_SLA = {"noise"}

#: Longer targets ("never, really") are cut to this: about 4,000 years, which the
#: database's integer column and a datetime can both still hold.
MAX_TARGET_MINUTES = 2**31 - 1


class SlaStatus(StrEnum):
    OK = "ok"
    WARNING = "warning"
    BREACHED = "breached"
    MET = "met"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class SlaState:
    """Where one mention stands against its target."""

    status: SlaStatus
    target_minutes: int | None = None
    started_at: datetime | None = None
    warn_at: datetime | None = None
    due_at: datetime | None = None

    def remaining(self, now: datetime) -> timedelta | None:
        return None if self.due_at is None else self.due_at - now


def target_minutes(category: str | None, tier: str | None, config: CareConfig) -> int | None:
    """Minutes to first response for a category and customer tier, or None (no SLA)."""
    if category is None or category in NO_SLA:
        return None
    target: int | None
    per_tier = {str(k): v for k, v in config.attention.sla.tiers.get(tier or "", {}).items()}
    per_category = {str(k): v for k, v in config.sla_minutes.items()}
    if tier is not None and category in per_tier:
        target = per_tier[category]
    elif category in per_category:
        target = per_category[category]
    else:
        target = DEFAULT_TARGETS.get(category)
    return None if target is None else min(target, MAX_TARGET_MINUTES)


def evaluate(*, started_at: datetime, target: int | None, now: datetime, warn_fraction: float,
             answered_at: datetime | None = None) -> SlaState:
    """The SLA state at ``now``: warning from ``warn_fraction`` of the target, breach at 100 %."""
    if target is None:
        return SlaState(SlaStatus.NONE)
    total = timedelta(minutes=target)
    warn_at = started_at + total * warn_fraction
    due_at = started_at + total
    if answered_at is not None:
        status = SlaStatus.MET if answered_at <= due_at else SlaStatus.BREACHED
    elif now >= due_at:
        status = SlaStatus.BREACHED
    elif now >= warn_at:
        status = SlaStatus.WARNING
    else:
        status = SlaStatus.OK
    return SlaState(status, target, started_at, warn_at, due_at)
