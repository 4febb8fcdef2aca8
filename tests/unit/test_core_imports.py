"""The core stays Slack-free and SQL-free (STYLE.md): an import scan keeps it so."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parents[2] / "bot"
FORBIDDEN = ("slack_bolt", "slack_sdk", "sqlmodel", "sqlalchemy")
#: Entry points may wire Slack and storage together.
ENTRY_POINTS = {"app.py", "cli.py", "demo.py"}


def runtime_imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_core_imports_no_slack_or_sql() -> None:
    offenders = []
    files = [p for p in BOT.rglob("*.py") if p.relative_to(BOT).as_posix() not in ENTRY_POINTS]
    assert len(files) > 10
    for path in files:
        for name in runtime_imports(ast.parse(path.read_text())):
            if name.split(".")[0] in FORBIDDEN:
                offenders.append(f"{path.relative_to(BOT.parent)}: {name}")
    assert offenders == []


def test_scan_catches_a_forbidden_import() -> None:
    assert runtime_imports(ast.parse("from slack_sdk import WebClient")) == ["slack_sdk"]
    guarded = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import sqlmodel\n"
    assert "sqlmodel" not in runtime_imports(ast.parse(guarded))
