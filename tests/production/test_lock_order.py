"""Workers and Slack actions on one PostgreSQL never deadlock each other.

A reclassification cancels the unsent card in the old channel while a deliverer
leases due rows; CI once caught the two waiting on each other's outbox rows.
These tests hold the workflow's row locks open in one connection and run the
worker's step in another with a lock timeout: the worker must pass over rows it
cannot take (leasing queue rows) or take locks in the workflow's order (post
before outbox row), never wait in the opposite order.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from storage import escalations, mentions, outbox
from storage.db import retry_conflicts, session_scope
from storage.tables import Mention, Outbox, SlackPost
from storage.workflow_tables import Dispatch

pytestmark = [pytest.mark.postgres,
              pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def _mention(session: Session, n: int, *, stage: str = "routed") -> int:
    row = Mention(source="test", external_id=str(n), author="@sam", text=f"mention {n}",
                  stage=stage)
    session.add(row)
    session.flush()
    assert row.id is not None
    return row.id


def select_outbox(kind: str) -> SelectOfScalar[Outbox]:
    return select(Outbox).where(Outbox.kind == kind)


def _worker_session(engine: Engine) -> Session:
    """A worker's session that gives up after 2 s waiting for a row lock."""
    session = Session(engine, expire_on_commit=False)
    session.execute(text("SET lock_timeout = '2s'"))
    return session


def _unsent_card(engine: Engine, *, with_update: bool) -> SlackPost:
    """A mention whose card is queued (and, if asked, an update of it too)."""
    with Session(engine, expire_on_commit=False) as setup:
        mention_id = _mention(setup, 1)
        post = outbox.enqueue_post_card(session=setup, mention_id=mention_id, channel="C0OLD",
                                        priority=3, now=NOW)
        setup.flush()
        if with_update:
            outbox.enqueue_card_update(session=setup, mention_id=mention_id, now=NOW)
        setup.commit()
        return post


def test_outbox_lease_passes_over_a_row_a_slack_action_holds(engine: Engine) -> None:
    post = _unsent_card(engine, with_update=True)
    with Session(engine, expire_on_commit=False) as setup:
        post_card = setup.exec(select_outbox(outbox.POST_CARD)).one()
        update_card = setup.exec(select_outbox(outbox.UPDATE_CARD)).one()
        assert post_card.post_id == update_card.post_id == post.id

    with Session(engine) as action:
        # A reclassification mid-transaction: it has cancelled the unsent card.
        action.execute(update(Outbox).where(col(Outbox.id) == post_card.id)
                       .values(status="cancelled"))
        worker = _worker_session(engine)
        try:
            leased = outbox.lease_due(session=worker, owner="w1", now=NOW, lease=LEASE, limit=10)
            worker.commit()
        finally:
            worker.close()
        # The worker took the free row and did not wait for the held one ...
        assert [row.id for row, _ in leased] == [update_card.id]
        # ... so the action can go on to the rows it needs next, and commit.
        action.execute(update(Outbox).where(col(Outbox.post_id) == post.id)
                       .values(post_id=None))
        action.commit()
    with Session(engine) as check:
        assert check.get(Outbox, post_card.id).status == "cancelled"  # type: ignore[union-attr]
        assert check.get(Outbox, update_card.id).lease_owner == "w1"  # type: ignore[union-attr]


def test_marking_a_card_sent_locks_its_post_before_its_outbox_row(engine: Engine) -> None:
    post = _unsent_card(engine, with_update=False)
    with Session(engine, expire_on_commit=False) as setup:
        item = setup.exec(select_outbox(outbox.POST_CARD)).one()
    with Session(engine, expire_on_commit=False) as worker:
        [(leased, _)] = outbox.lease_due(session=worker, owner="w1", now=NOW, lease=LEASE,
                                         limit=10)
        worker.commit()

    errors: list[BaseException] = []
    marked: list[bool] = []
    with Session(engine) as action:
        # A reclassification mid-transaction: the old post is no longer current ...
        action.execute(update(SlackPost).where(col(SlackPost.id) == post.id)
                       .values(is_current=False))
        started = threading.Event()

        def mark_sent() -> None:
            worker = _worker_session(engine)
            try:
                started.set()
                marked.append(outbox.mark_sent(session=worker, item_id=leased.id or 0,
                                               owner="w1", now=NOW, ts="1.0"))
                worker.commit()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                worker.close()

        thread = threading.Thread(target=mark_sent)
        thread.start()
        started.wait(5)
        # Give the worker time to take whatever lock it takes first.
        thread.join(0.5)
        # ... and now it touches the post's outbox rows, as move_card does.
        action.execute(text("SET LOCAL lock_timeout = '2s'"))
        action.execute(update(Outbox).where(col(Outbox.post_id) == post.id)
                       .values(last_error="moved"))
        action.commit()
        thread.join(10)
    assert not errors, errors
    assert marked == [True]
    with Session(engine) as check:
        row = check.get(Outbox, item.id)
        assert row is not None and row.status == "sent" and row.last_error == "moved"
        assert check.get(SlackPost, post.id).ts == "1.0"  # type: ignore[union-attr]


def test_mention_and_dispatch_leases_pass_over_held_rows(engine: Engine) -> None:
    with Session(engine, expire_on_commit=False) as setup:
        first, second = _mention(setup, 1, stage="new"), _mention(setup, 2, stage="new")
        held = escalations.enqueue(session=setup, kind="crm_case", mention_id=first,
                                   payload={}, now=NOW)
        free = escalations.enqueue(session=setup, kind="crm_case", mention_id=second,
                                   payload={}, now=NOW)
        setup.commit()
    with Session(engine) as action:
        # Another transaction holds the first mention and the first dispatch row.
        action.execute(update(Mention).where(col(Mention.id) == first).values(lang="en"))
        action.execute(update(Dispatch).where(col(Dispatch.id) == held.id)
                       .values(last_error="busy"))
        worker = _worker_session(engine)
        try:
            leased_mentions = mentions.lease_new(session=worker, owner="w1", limit=10, now=NOW,
                                                 lease=LEASE)
            leased_dispatch = escalations.lease_due(session=worker, owner="w1", now=NOW,
                                                    lease=LEASE, limit=10)
            worker.commit()
        finally:
            worker.close()
        assert [row.id for row in leased_mentions] == [second]
        assert [row.id for row in leased_dispatch] == [free.id]
        action.commit()


def test_a_unit_of_work_that_loses_a_deadlock_runs_again(engine: Engine) -> None:
    """Two units of work lock two rows in opposite orders: PostgreSQL aborts one,
    and ``retry_conflicts`` runs it again, so both land."""
    with Session(engine, expire_on_commit=False) as setup:
        a, b = _mention(setup, 1), _mention(setup, 2)
        setup.commit()
    both_hold_one = threading.Barrier(2, timeout=10)
    calls: Counter[str] = Counter()

    @retry_conflicts()
    def touch(name: str, first: int, second: int) -> None:
        calls[name] += 1
        with session_scope(engine) as session:
            session.execute(update(Mention).where(col(Mention.id) == first)
                            .values(author=Mention.author + name))
            if calls[name] == 1:
                both_hold_one.wait()  # the first attempts deadlock for sure
            session.execute(update(Mention).where(col(Mention.id) == second)
                            .values(author=Mention.author + name))

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(touch, "x", a, b), pool.submit(touch, "y", b, a)]
        for future in futures:
            future.result(timeout=30)
    assert sorted(calls.values()) == [1, 2]  # one of them ran twice
    with Session(engine) as check:
        for mention_id in (a, b):
            author = check.get(Mention, mention_id).author  # type: ignore[union-attr]
            assert sorted(author.removeprefix("@sam")) == ["x", "y"]


def test_other_database_errors_are_not_run_again(engine: Engine) -> None:
    calls = 0

    @retry_conflicts()
    def divide_by_zero() -> None:
        nonlocal calls
        calls += 1
        with session_scope(engine) as session:
            session.execute(text("SELECT 1/0"))

    with pytest.raises(DBAPIError):
        divide_by_zero()
    assert calls == 1
