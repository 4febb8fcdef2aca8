"""`carebot demo` and `carebot import` through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlmodel import Session, create_engine, select

from storage.tables import Mention

ROOT = Path(__file__).resolve().parents[2]


def carebot(*args: str, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full_env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "HF_HUB_OFFLINE": "1",
                "COLUMNS": "120", **(env or {})}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_demo_shows_cards_per_channel_with_the_real_engine(tmp_path: Path) -> None:
    proc = carebot("demo", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    shipped = [json.loads(line) for line in
               (ROOT / "bot/data/sample_mentions.jsonl").read_text().splitlines()]
    assert f"{len(shipped)} mentions ingested" in out
    for channel in ("C0SUPPORT", "C0DOCS", "C0COMMS", "C0MARKETING", "C0SALES", "C0PRODUCT",
                    "C0LEGAL"):
        assert f"({channel})" in out, channel
    for category in ("CASE", "QUERY", "RANT", "RAVE", "LEAD", "RFE", "FRAUD"):
        assert category in out, category
    assert "my laptop won't boot since the update, help" in out
    # Languages are detected, not just carried: the Danish and Russian cases say so.
    assert "lang da" in out and "lang ru" in out
    assert "Summary: where each mention went" in out


def test_import_csv_and_jsonl_reports_bad_rows_and_skips_duplicates(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'import.db'}"
    csv_file = tmp_path / "mentions.csv"
    csv_file.write_text(
        "source,id,author,text,url,author_reach\n"
        "twitter,1,dana,my laptop won't boot since the update,https://x.com/d/1,300\n"
        "twitter,2,,no author here,,\n"
        "twitter,3,lars,virker ikke,ftp://bad,12\n"
        "twitter,4,mia,\"multi\nline, with comma\",,\n", encoding="utf-8")
    proc = carebot("import", str(csv_file), cwd=tmp_path, env={"DATABASE_URL": db})
    assert proc.returncode == 0, proc.stderr
    assert "imported 2 new mention(s), 0 already stored, 2 invalid row(s) skipped" in proc.stdout
    assert "line 3: author" in proc.stderr and "line 4: url" in proc.stderr

    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text(json.dumps({"source": "twitter", "id": "1", "author": "dana",
                                 "text": "again"}) + "\n{broken\n" +
                     json.dumps({"source": "reddit", "id": "t3_x", "author": "u/a",
                                 "text": "hjælp"}) + "\n", encoding="utf-8")
    proc = carebot("import", str(jsonl), cwd=tmp_path, env={"DATABASE_URL": db})
    assert "imported 1 new mention(s), 1 already stored, 1 invalid row(s) skipped" in proc.stdout
    assert "line 2: not valid JSON" in proc.stderr

    engine = create_engine(db)
    with Session(engine) as session:
        rows = session.exec(select(Mention).order_by(Mention.id)).all()
    assert [(m.source, m.external_id) for m in rows] == [
        ("twitter", "1"), ("twitter", "4"), ("reddit", "t3_x")]
    assert rows[1].text == "multi\nline, with comma"
    assert rows[0].author_reach == 300


def test_import_of_an_unknown_file_type_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "mentions.xlsx"
    bad.write_text("x")
    proc = carebot("import", str(bad), cwd=tmp_path,
                   env={"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert proc.returncode != 0
    assert "expected a .csv, .jsonl or .json file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_import_of_a_csv_with_a_quote_left_open_imports_nothing_and_names_the_line(
        tmp_path: Path) -> None:
    """Read leniently, the open quote would swallow rows 3-5 into one text and import it."""
    db = f"sqlite:///{tmp_path / 'import.db'}"
    csv_file = tmp_path / "mentions.csv"
    csv_file.write_text("source,id,author,text\n"
                        "twitter,1,dana,fine\n"
                        "twitter,2,lars,\"forgot to close\n"
                        "twitter,3,mia,swallowed\n"
                        "twitter,4,ole,swallowed too\n", encoding="utf-8")
    proc = carebot("import", str(csv_file), cwd=tmp_path, env={"DATABASE_URL": db})
    assert proc.returncode != 0
    assert "mentions.csv line 3: a quoted field opened here is never closed" in proc.stderr
    assert "Traceback" not in proc.stderr
    engine = create_engine(db)
    if inspect(engine).has_table("mention"):  # refused before the schema was even made
        with Session(engine) as session:
            assert session.exec(select(Mention)).all() == []


def test_train_reads_reclassifications_stored_from_slack(tmp_path: Path, monkeypatch) -> None:
    """`carebot train` gets Slack corrections from DATABASE_URL (latest label per mention)."""
    from datetime import UTC, datetime

    from bot.cli import _stored_feedback
    from bot.domain import Category, MentionIn
    from storage import feedback, mentions
    from storage.db import make_engine, migrate, session_scope

    db = f"sqlite:///{tmp_path / 'fb.db'}"
    monkeypatch.setenv("DATABASE_URL", db)
    engine = make_engine(db)
    migrate(engine)
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        [mid] = mentions.insert_mentions(session=session, now=now, items=[MentionIn(
            source="t", external_id="1", author="a", text="is there a student discount?")])
        for category in ("query", "lead"):  # corrected twice: the last label counts
            feedback.record(session=session, mention_id=mid, text="is there a student discount?",
                            lang="en", predicted="rave", category=category, actor="U1", now=now)
    engine.dispose()
    assert _stored_feedback() == [("is there a student discount?", Category.LEAD)]
