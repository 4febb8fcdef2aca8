"""The append-only audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from storage.tables import AuditLog


def record(
    *,
    session: Session,
    actor: str,
    action: str,
    now: datetime,
    mention_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditLog(mention_id=mention_id, actor=actor, action=action, detail=detail or {}, at=now)
    )


