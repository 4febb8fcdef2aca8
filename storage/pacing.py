"""Per-channel send pacing shared by every replica (a token bucket per channel).

Slack allows about one message per second per channel with short bursts, and
answers 429 with ``Retry-After`` beyond that. With several replicas, pacing in
memory would multiply the rate, so the bucket lives in the database: taking a
token is a locked read-modify-write of the channel's row (``FOR UPDATE`` on
PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers already).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Column, Float, or_
from sqlmodel import Field, Session, SQLModel, col, select

from storage.db import dialect_insert
from storage.tables import UTCDateTime


class ChannelPace(SQLModel, table=True):
    __tablename__ = "channel_pace"

    channel: str = Field(primary_key=True, max_length=64)
    tokens: float = Field(sa_column=Column(Float, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    paused_until: datetime | None = Field(default=None,
                                          sa_column=Column(UTCDateTime(), nullable=True))
    #: When the next token is available: lets leasing skip channels that are
    #: out of tokens instead of leasing and handing back their rows.
    ready_at: datetime | None = Field(default=None,
                                      sa_column=Column(UTCDateTime(), nullable=True))


def _row(session: Session, channel: str, now: datetime, burst: int) -> ChannelPace:
    insert = dialect_insert(session)
    session.execute(
        insert(ChannelPace)
        .values(channel=channel, tokens=float(burst), updated_at=now)
        .on_conflict_do_nothing(index_elements=["channel"])
    )
    row = session.exec(
        select(ChannelPace).where(ChannelPace.channel == channel).with_for_update()
    ).one()
    return row


def take(*, session: Session, channel: str, now: datetime, rate: float, burst: int) -> float:
    """Take one send token. Returns 0.0 when taken, else the seconds to wait."""
    row = _row(session, channel, now, burst)
    if row.paused_until is not None and row.paused_until > now:
        return (row.paused_until - now).total_seconds()
    # Replicas' clocks differ a little: the bucket's time only moves forward, so a
    # replica whose clock is behind never winds it back (which would refill it again
    # for every replica ahead, each time).
    at = max(now, row.updated_at)
    tokens = min(float(burst), row.tokens + (at - row.updated_at).total_seconds() * rate)
    row.updated_at = at
    wait = 0.0
    if tokens >= 1.0:
        tokens -= 1.0
    else:
        wait = (1.0 - tokens) / rate + (at - now).total_seconds()
    row.tokens = tokens
    row.ready_at = at + timedelta(seconds=max(0.0, (1.0 - tokens) / rate))
    session.add(row)
    return wait


def pause(*, session: Session, channel: str, now: datetime, seconds: float, burst: int) -> None:
    """Stop sending to ``channel`` for ``seconds`` (Slack's ``Retry-After``)."""
    row = _row(session, channel, now, burst)
    until = now + timedelta(seconds=seconds)
    if row.paused_until is None or row.paused_until < until:
        row.paused_until = until
    row.tokens = 0.0
    row.updated_at = max(now, row.updated_at)
    row.ready_at = until
    session.add(row)


def blocked(*, session: Session, now: datetime) -> dict[str, datetime]:
    """Channels that cannot send right now (paused by a 429, or out of tokens),
    with the time each can send again."""
    rows = session.exec(
        select(ChannelPace).where(
            or_(col(ChannelPace.paused_until) > now, col(ChannelPace.ready_at) > now))
    )
    return {row.channel: max(t for t in (row.paused_until, row.ready_at) if t is not None)
            for row in rows}
