"""The append-only audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

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


def for_mention(*, session: Session, mention_id: int) -> list[AuditLog]:
    return list(
        session.exec(
            select(AuditLog).where(AuditLog.mention_id == mention_id).order_by(col(AuditLog.id))
        )
    )
