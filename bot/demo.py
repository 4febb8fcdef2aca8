"""``carebot demo``: the real pipeline on SQLite over shipped sample mentions.

Mentions are ingested, classified, routed and queued in the outbox exactly as
in production; instead of calling Slack, the queued cards are rendered in the
terminal, grouped by channel, and marked delivered.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from bot.config import load_care_config, load_settings
from bot.importer import read_mentions
from bot.services import Services
from bot.services.delivery import Delivery

EMOJI = {
    ":sos:": "🆘", ":question:": "❓", ":rage:": "😡", ":heart:": "❤️", ":moneybag:": "💰",
    ":bulb:": "💡", ":rotating_light:": "🚨", ":zzz:": "💤", ":mag:": "🔍",
    ":slightly_frowning_face:": "🙁", ":neutral_face:": "😐", ":slightly_smiling_face:": "🙂",
    ":raising_hand:": "🙋", ":speech_balloon:": "💬", ":arrow_right:": "➡️",
}


def mrkdwn_to_rich(text: str) -> str:
    """Slack mrkdwn to rich markup, for a readable terminal preview."""
    text = text.replace("[", r"\[")
    text = re.sub(r"<!date\^\d+\^[^|]*\|([^>]*)>", r"\1", text)
    text = re.sub(r"<(https?://[^|>]+)\|([^>]+)>", r"[link=\1]\2[/link] [dim](\1)[/dim]", text)
    text = re.sub(r"<@(\w+)>", r"@\1", text)
    text = re.sub(r"<#(\w+)>", r"#\1", text)
    text = re.sub(r"\*([^*\n]+)\*", r"[bold]\1[/bold]", text)
    text = re.sub(r"`([^`\n]+)`", r"[cyan]\1[/cyan]", text)
    text = re.sub(r"^> ?(.*)$", r"[italic]│ \1[/italic]", text, flags=re.MULTILINE)
    for code, char in EMOJI.items():
        text = text.replace(code, char)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def blocks_to_rich(blocks: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    for block in blocks:
        if block["type"] == "section":
            lines.append(mrkdwn_to_rich(block["text"]["text"]))
        elif block["type"] == "context":
            lines.append("[dim]" + "  ".join(mrkdwn_to_rich(e.get("text", ""))
                                             for e in block["elements"]) + "[/dim]")
        elif block["type"] == "actions":
            labels = [f"[reverse] {e['text']['text']} [/reverse]" if "text" in e
                      else "[reverse] ⋯ [/reverse]" for e in block["elements"]]
            lines.append("  ".join(labels))
    return "\n".join(lines)


def run_demo(*, database_url: str, model: str | None, console: Console | None = None) -> None:
    from bot.classify.factory import build_classifier
    from handlers.blocks import render_card, to_dicts
    from storage.db import make_engine, migrate

    console = console or Console()
    settings = load_settings(database_url=database_url)
    config = load_care_config(settings.carebot_config)
    if database_url.startswith("sqlite:///") and not database_url.endswith(":memory:"):
        Path(database_url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    engine = make_engine(settings.database_url)
    migrate(engine)
    with console.status("loading the classifier…"):
        classifier = build_classifier(
            config, model=model or settings.carebot_model,
            backend=settings.carebot_encoder_backend,
        )  # fmt: skip
    services = Services(engine=engine, config=config, classifier=classifier)

    sample = resources.files("bot.data").joinpath("sample_mentions.jsonl")
    with resources.as_file(sample) as path:
        items, problems = read_mentions(path)
    assert not problems, problems
    result = services.ingest(items)
    routed = []
    while batch := services.route_pending(owner="demo"):
        routed.extend(batch)

    delivery = Delivery(services, owner="demo")
    by_channel: dict[str, list[str]] = defaultdict(list)
    cards = 0
    while tasks := delivery.lease_due(limit=100):
        for task in tasks:
            assert task.card is not None
            blocks = to_dicts(render_card(task.card, channel=task.channel))
            by_channel[task.channel].append(blocks_to_rich(blocks))
            delivery.succeeded(task, ts=f"demo.{task.id}")
            cards += 1

    console.rule(f"[bold]carebot demo[/bold] — {len(result.new_ids)} mentions ingested, "
                 f"{cards} cards posted ({type(classifier).__name__})")
    names = {d.channel: (name, d.label or name) for name, d in config.departments.items()}
    names[config.triage_channel] = ("triage", "Triage")
    for channel, rendered in sorted(by_channel.items(), key=lambda kv: names[kv[0]][0]):
        label = names.get(channel, (channel, channel))[1]
        console.print()
        console.rule(f"#{label.lower().replace(' ', '-')} ({channel}) — {len(rendered)} card(s)",
                     style="cyan")
        for card in rendered:
            console.print(Panel(card, expand=False, width=100))

    table = Table(title="Summary: where each mention went")
    for column in ("route", "mentions", "categories", "languages"):
        table.add_column(column)
    categories: dict[str, Counter[str]] = defaultdict(Counter)
    languages: dict[str, Counter[str]] = defaultdict(Counter)
    for r in routed:
        key = (r.department or ("triage" if r.channel else "not posted (noise)"))
        categories[key][r.category] += 1
        languages[key][services.card_view(r.mention_id).lang or "?"] += 1
    for key in sorted(categories):
        table.add_row(key, str(sum(categories[key].values())),
                      ", ".join(f"{c} {n}" for c, n in categories[key].most_common()),
                      ", ".join(f"{lang} {n}" for lang, n in languages[key].most_common()))
    console.print()
    console.print(table)
