"""Authors, customers and watch lists: who is behind a mention.

An *author* is one handle on one source, with its reach (followers) and a
reputation in [0, 1] where the source gives a signal. A *customer* has a value
tier and is linked to author handles; a handle linked with source ``*`` matches
that handle on every source. *Watch lists* (mvp, influencer, big_customer, or
any custom name) hold handles the same way.

Handles are stored normalised (lower case, no leading ``@``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, UniqueConstraint, delete, update
from sqlmodel import Field, Session, SQLModel, col, select

from bot.customers import CustomerRow
from storage.db import dialect_insert
from storage.tables import UTCDateTime, utcnow

ANY_SOURCE = "*"


def normalize_handle(handle: str) -> str:
    return handle.strip().lstrip("@").strip().lower()


class Author(SQLModel, table=True):
    """One handle on one source."""

    __tablename__ = "author"
    __table_args__ = (UniqueConstraint("source", "handle", name="uq_author_source_handle"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=64)
    handle: str = Field(max_length=255)
    reach: int | None = None
    reputation: float | None = None
    crm_checked_at: datetime | None = Field(default=None,
                                            sa_column=Column(UTCDateTime(), nullable=True))
    first_seen_at: datetime = Field(default_factory=utcnow,
                                    sa_column=Column(UTCDateTime(), nullable=False))
    last_seen_at: datetime = Field(default_factory=utcnow,
                                   sa_column=Column(UTCDateTime(), nullable=False))


class Customer(SQLModel, table=True):
    """A customer with a value tier (imported from CSV or looked up in the CRM)."""

    __tablename__ = "customer"

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=128, unique=True)
    name: str | None = Field(default=None, max_length=255)
    tier: str | None = Field(default=None, max_length=32)
    origin: str = Field(default="csv", max_length=16)
    updated_at: datetime = Field(default_factory=utcnow,
                                 sa_column=Column(UTCDateTime(), nullable=False))


class CustomerHandle(SQLModel, table=True):
    """Links a customer to an author handle (``source`` ``*`` = any source)."""

    __tablename__ = "customer_handle"
    __table_args__ = (UniqueConstraint("source", "handle", name="uq_customer_handle"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    source: str = Field(default=ANY_SOURCE, max_length=64)
    handle: str = Field(max_length=255)


class WatchEntry(SQLModel, table=True):
    """A handle on a watch list."""

    __tablename__ = "watch_entry"
    __table_args__ = (UniqueConstraint("list_name", "source", "handle", name="uq_watch_entry"),)

    id: int | None = Field(default=None, primary_key=True)
    list_name: str = Field(max_length=32, index=True)
    source: str = Field(default=ANY_SOURCE, max_length=64)
    handle: str = Field(max_length=255, index=True)
    added_by: str = Field(max_length=64)
    added_at: datetime = Field(default_factory=utcnow,
                               sa_column=Column(UTCDateTime(), nullable=False))


@dataclass(frozen=True, slots=True)
class Profile:
    """Everything known about one author, for scoring."""

    source: str
    handle: str
    reach: int | None
    reputation: float | None
    customer_id: str | None
    tier: str | None
    watch_lists: tuple[str, ...]
    crm_checked_at: datetime | None


# -- authors -----------------------------------------------------------------


def touch_author(*, session: Session, source: str, handle: str, now: datetime,
                 reach: int | None = None, reputation: float | None = None) -> None:
    """Record that an author was seen, keeping the latest reach and reputation given."""
    handle = normalize_handle(handle)
    session.execute(
        dialect_insert(session)(Author)
        .values(source=source, handle=handle, reach=reach, reputation=reputation,
                first_seen_at=now, last_seen_at=now)
        .on_conflict_do_nothing(index_elements=["source", "handle"])
    )
    values: dict[str, object] = {"last_seen_at": now}
    if reach is not None:
        values["reach"] = reach
    if reputation is not None:
        values["reputation"] = reputation
    session.execute(update(Author).where(col(Author.source) == source, col(Author.handle) == handle)
                    .values(**values))


def mark_crm_checked(*, session: Session, source: str, handle: str, now: datetime) -> None:
    session.execute(update(Author).where(col(Author.source) == source,
                                         col(Author.handle) == normalize_handle(handle))
                    .values(crm_checked_at=now))


def profile(*, session: Session, source: str, handle: str) -> Profile:
    """Reach, reputation, customer tier and watch lists of one author."""
    handle = normalize_handle(handle)
    author = session.exec(select(Author).where(col(Author.source) == source,
                                               col(Author.handle) == handle)).first()
    customer = customer_for(session=session, source=source, handle=handle)
    return Profile(
        source=source, handle=handle,
        reach=author.reach if author else None,
        reputation=author.reputation if author else None,
        customer_id=customer.external_id if customer else None,
        tier=customer.tier if customer else None,
        watch_lists=tuple(watch_lists_of(session=session, source=source, handle=handle)),
        crm_checked_at=author.crm_checked_at if author else None,
    )


# -- customers ---------------------------------------------------------------


def customer_for(*, session: Session, source: str, handle: str) -> Customer | None:
    """The customer linked to a handle on ``source`` (an exact-source link wins)."""
    handle = normalize_handle(handle)
    rows = session.exec(
        select(Customer, CustomerHandle.source)
        .join(CustomerHandle, col(CustomerHandle.customer_id) == col(Customer.id))
        .where(col(CustomerHandle.handle) == handle,
               col(CustomerHandle.source).in_([source, ANY_SOURCE]))
    ).all()
    rows = sorted(rows, key=lambda row: row[1] == ANY_SOURCE)
    return rows[0][0] if rows else None


def upsert_customers(*, session: Session, records: Iterable[CustomerRow], now: datetime,
                     origin: str = "csv") -> tuple[int, int]:
    """Insert or update customers and (re)link their handles. Returns (created, updated).

    A handle already linked to another customer moves to this one: the newest
    import is the truth.
    """
    created = updated = 0
    for record in records:
        customer = session.exec(
            select(Customer).where(col(Customer.external_id) == record.external_id)).first()
        if customer is None:
            customer = Customer(external_id=record.external_id, name=record.name,
                                tier=record.tier, origin=origin, updated_at=now)
            created += 1
        else:
            customer.name = record.name or customer.name
            customer.tier = record.tier
            customer.updated_at = now
            updated += 1
        session.add(customer)
        session.flush()
        for source, handle in record.handles:
            link_handle(session=session, customer_id=customer.id or 0, source=source,
                        handle=handle)
    return created, updated


def link_handle(*, session: Session, customer_id: int, source: str, handle: str) -> None:
    handle = normalize_handle(handle)
    session.execute(delete(CustomerHandle).where(col(CustomerHandle.source) == source,
                                                 col(CustomerHandle.handle) == handle))
    session.add(CustomerHandle(customer_id=customer_id, source=source, handle=handle))
    session.flush()


def count_customers(*, session: Session) -> int:
    return len(session.exec(select(Customer.id)).all())


# -- watch lists -------------------------------------------------------------


def watch_lists_of(*, session: Session, source: str, handle: str) -> list[str]:
    handle = normalize_handle(handle)
    names = session.exec(
        select(WatchEntry.list_name).where(col(WatchEntry.handle) == handle,
                                           col(WatchEntry.source).in_([source, ANY_SOURCE]))
    ).all()
    return sorted(set(names))


def add_watch(*, session: Session, list_name: str, handle: str, source: str, added_by: str,
              now: datetime) -> bool:
    """Put a handle on a list. False when it was already there."""
    result = session.execute(
        dialect_insert(session)(WatchEntry)
        .values(list_name=list_name, source=source, handle=normalize_handle(handle),
                added_by=added_by, added_at=now)
        .on_conflict_do_nothing(index_elements=["list_name", "source", "handle"])
        # RETURNING, not rowcount: psycopg reports no rowcount for this statement.
        .returning(WatchEntry.__table__.c.id)  # type: ignore[attr-defined]
    )
    return result.first() is not None


def remove_watch(*, session: Session, list_name: str, handle: str, source: str) -> bool:
    """Take a handle off a list. False when it was not there."""
    result = session.execute(
        delete(WatchEntry).where(col(WatchEntry.list_name) == list_name,
                                 col(WatchEntry.source) == source,
                                 col(WatchEntry.handle) == normalize_handle(handle)))
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def watch_entries(*, session: Session, list_name: str | None = None) -> list[WatchEntry]:
    query = select(WatchEntry).order_by(col(WatchEntry.list_name), col(WatchEntry.handle))
    if list_name is not None:
        query = query.where(col(WatchEntry.list_name) == list_name)
    return list(session.exec(query))
