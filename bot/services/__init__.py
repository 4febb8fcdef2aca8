"""Use cases. Each public method is one unit of work: it opens the session
(the boundary), calls repository functions and returns plain values."""

from __future__ import annotations

from bot.services.core import Clock, Services, utc_clock

__all__ = ["Clock", "Services", "utc_clock"]
