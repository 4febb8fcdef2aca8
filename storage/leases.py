"""Leases on queue rows (``outbox``, ``dispatch``): the one step both queues share."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col


def renew(*, session: Session, table: Any, item_id: int, owner: str, now: datetime,
          lease: timedelta) -> bool:
    """Extend ``owner``'s lease on a pending row of ``table`` it is about to send; False if
    it no longer holds it.

    A batch is leased at once but sent one row at a time, so with the receiver slow the
    later rows' leases can run out before their turn and another worker take them over.
    Renewing just before the call keeps the row this worker's for the call, or says it
    is not.
    """
    result = session.execute(
        update(table)
        .where(col(table.id) == item_id, col(table.lease_owner) == owner,
               col(table.status) == "pending")
        .values(lease_until=now + lease)
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]
