"""Block Kit for stats, digests and spike alerts: pure functions of view-models.

Every function returns a list of ``chat.postMessage`` payloads (``text`` and
``blocks``, no channel): long content is split into sections of at most 3000
characters, and into several messages of at most 50 blocks each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.digests import DailyDigest, Insight, MentionRef, WeeklyDigest
from bot.services.reports import SpikeAlert
from bot.stats import MentionRow, StatsReport
from handlers.blocks import CATEGORY_EMOJI, MAX_BLOCKS, MAX_SECTION, escape, link, truncate

Payload = dict[str, Any]
QUOTE_CHARS = 280


def split_text(text: str, limit: int = MAX_SECTION) -> list[str]:
    """Split mrkdwn into chunks of at most ``limit`` characters, at line breaks
    where possible (a single overlong line is cut)."""
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current or not chunks:
        chunks.append(current)
    return chunks


def sections(text: str) -> list[Block]:
    return [SectionBlock(text=MarkdownTextObject(text=chunk)) for chunk in split_text(text)
            if chunk.strip()]


def context(text: str) -> Block:
    return ContextBlock(elements=[MarkdownTextObject(text=truncate(text, MAX_SECTION))])


def paginate(blocks: Sequence[Block], text: str) -> list[Payload]:
    """Split blocks into messages of at most 50 blocks; each page is validated."""
    per_page = MAX_BLOCKS - 1  # room for the "page i/n" context
    pages = [list(blocks[i:i + per_page]) for i in range(0, len(blocks), per_page)] or [[]]
    payloads = []
    for number, page in enumerate(pages, start=1):
        if len(pages) > 1:
            page.append(context(f"page {number}/{len(pages)}"))
        for block in page:
            block.validate_json()
        payloads.append({"text": text if number == 1 else f"{text} ({number}/{len(pages)})",
                         "blocks": [b.to_dict() for b in page],
                         "unfurl_links": False, "unfurl_media": False})
    return payloads


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def mins(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f} min" if value < 120 else f"{value / 60:.1f} h"


def signed(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:+.{digits}f}"


def tally(counts: dict[str, int], limit: int = 10) -> str:
    items = list(counts.items())
    shown = ", ".join(f"{escape(k)} {v}" for k, v in items[:limit])
    rest = sum(v for _, v in items[limit:])
    return (shown + (f", other {rest}" if rest else "")) or "none"


def quote(m: MentionRef) -> str:
    text = escape(truncate(" ".join(m.text.split()), QUOTE_CHARS))
    original = link(m.url, "original")
    to_original = f" · {original}" if original else ""
    where = f" · <#{m.channel}>" if m.channel else ""
    emoji = CATEGORY_EMOJI.get(m.category or "", ":speech_balloon:")
    return f"{emoji} *@{escape(m.author)}* ({escape(m.source)}{where}{to_original})\n> {text}"


# -- /care stats ---------------------------------------------------------------


def stats_messages(report: StatsReport, *, scope: str) -> list[Payload]:
    """The numbers of ``/care stats`` (the charts go beside them as files)."""
    head = truncate(f"Care stats — {scope}", 150)
    volume = (f"*Volume* {report.total} mentions\n"
              f"• by category: {tally(report.by_category)}\n"
              f"• by department: {tally(report.by_department)}\n"
              f"• by language: {tally(report.by_lang)}\n"
              f"• by source: {tally(report.by_source)}")
    response = (f"*First response* p50 {mins(report.ttfr_p50)} · p90 {mins(report.ttfr_p90)}"
                f" · within SLA {pct(report.within_sla)}\n"
                f"*Response rate* {pct(report.response_rate)} "
                f"({report.responded}/{report.actionable} actionable)")
    for s in report.sla:
        target = f"SLA {s.sla_minutes} min, met {pct(s.within_sla)}" if s.sla_minutes \
            is not None else "no SLA"
        response += (f"\n• {escape(s.category)}: {s.responses} responses, p50 {mins(s.p50)}, "
                     f"p90 {mins(s.p90)} ({target})")
    quality = (f"*Conversion score* {signed(report.conversion_avg)} over "
               f"{report.conversion_n} tagged (trend {signed(report.conversion_trend)} vs "
               f"previous period {signed(report.conversion_prev_avg)})\n"
               f"*Automation* {pct(report.automation_rate)} routed without a human "
               f"({report.automated}/{report.classified}); precision "
               f"{pct(report.automation_precision)} ({report.reclassified} reclassified)")
    exceptions = "*Exceptions* " + (", ".join(f"`{escape(k)}` {v}"
                                              for k, v in report.exceptions.items()) or "none")
    blocks: list[Block] = [HeaderBlock(text=head), context(escape(report.period.label))]
    for part in (volume, response, quality, exceptions):
        blocks += sections(part)
    if report.agents:
        lines = ["*Per agent* (claimed · responded · p50 · conversion)"]
        lines += [f"• <@{a.user}>: {a.claimed} · {a.responded} · {mins(a.ttfr_p50)} · "
                  f"{signed(a.conversion_avg)}" for a in report.agents]
        blocks += sections("\n".join(lines))
    return paginate(blocks, f"Care stats — {scope}: {report.total} mentions")


# -- daily newsletter ------------------------------------------------------------


def _delta(count: int, previous: int) -> str:
    diff = count - previous
    arrow = ":arrow_up_small:" if diff > 0 else ":arrow_down_small:" if diff < 0 else "="
    return f"{count} ({arrow} {diff:+d})" if diff else f"{count} (=)"


def daily_messages(digest: DailyDigest) -> list[Payload]:
    title = f"Daily care digest — {digest.scope} — {digest.day.isoformat()}"
    blocks: list[Block] = [HeaderBlock(text=truncate(title, 150))]
    lines = [f"*{digest.total}* mentions yesterday; the day before "
             f"{digest.previous_total} ({digest.total - digest.previous_total:+d})"]
    lines += [f"{CATEGORY_EMOJI.get(c.category, '•')} {escape(c.category)}: "
              f"{_delta(c.count, c.previous)}" for c in digest.categories]
    blocks += sections("\n".join(lines))
    blocks.append(DividerBlock())
    if digest.themes:
        blocks += sections("*Top themes*")
        for theme in digest.themes:
            label = ", ".join(escape(t) for t in theme.label) or "(no key terms)"
            blocks += sections(f"*{label}* — {theme.count} mentions\n{quote(theme.example)}")
    else:
        blocks.append(context("No recurring themes yesterday."))
    if digest.notable:
        blocks += sections("*Notable mentions*")
        blocks += sections("\n".join(f"_{escape(m.reason)}_ · {quote(m)}"
                                     for m in digest.notable))
    if digest.emerging:
        terms = ", ".join(f"`{escape(e.term)}` {e.count} (usually {e.baseline:.1f}/day)"
                          for e in digest.emerging)
        blocks += sections(f":chart_with_upwards_trend: *Emerging* {terms}")
    return paginate(blocks, f"{title}: {digest.total} mentions")


# -- weekly leadership digest --------------------------------------------------


def _insight(insight: Insight, *, top: bool) -> str:
    m = insight.mention
    words = escape(truncate(" ".join(m.text.split()), 900 if top else QUOTE_CHARS))
    original = link(m.url, "original") or "no link"
    where = f" · <#{m.channel}>" if m.channel else ""
    return (f"> {words}\n— *@{escape(m.author)}* on {escape(m.source)} ({escape(m.category or '-')}"
            f"{where} · {original}) · _{escape(m.reason)}_")


def weekly_messages(digest: WeeklyDigest) -> list[Payload]:
    title = "One interesting thing we learned from customers"
    span = f"{digest.first_day.isoformat()} – {digest.last_day.isoformat()}"
    blocks: list[Block] = [HeaderBlock(text=title), context(
        f"Week {span} · {digest.total} mentions · {digest.starred_count} starred by the team")]
    if digest.top is None:
        blocks += sections("Nothing stood out this week: no actionable mentions.")
    else:
        blocks += sections(_insight(digest.top, top=True))
        if not digest.top.starred:
            blocks.append(context("Nothing was starred this week: ranked by novelty, demand "
                                  "and surprise (see the digest docs)."))
    if digest.runners_up:
        blocks.append(DividerBlock())
        blocks += sections("*Runners-up*")
        for insight in digest.runners_up:
            blocks += sections(_insight(insight, top=False))
    return paginate(blocks, f"{title} — week {span}")


# -- spike alerts -------------------------------------------------------------------

def _spike_mention(m: MentionRow) -> str:
    line = (f"• {CATEGORY_EMOJI.get(m.category or '', '•')} *@{escape(m.author)}*: "
            f"{escape(truncate(' '.join(m.text.split()), 140))}")
    if opened := link(m.url, "open"):
        line += f" {opened}"
    return line + (f" · <#{m.channel}>" if m.channel else "")


def spike_messages(alert: SpikeAlert, *, max_links: int = 10) -> list[Payload]:
    keys = ", ".join(f"{s.kind} *{escape(s.subject)}*" for s in alert.spikes)
    exception = any(s.kind == "exception" for s in alert.spikes)
    emoji = ":rotating_light:" if exception else ":chart_with_upwards_trend:"
    headline = f"{emoji} *{'Exception' if exception else 'Spike'}:* {keys}"
    lines = [f"• {escape(s.key)}: {s.count} in the window (usually {s.baseline_mean:.1f}, "
             f"alert at {s.threshold:.0f})" for s in alert.spikes]
    ids = sorted({i for s in alert.spikes for i in s.mention_ids})
    shown = [alert.mentions[i] for i in ids[:max_links] if i in alert.mentions]
    links = [_spike_mention(m) for m in shown]
    more = len(ids) - len(shown)
    blocks: list[Block] = sections(headline + "\n" + "\n".join(lines))
    blocks += sections("*Mentions*\n" + "\n".join(links) + (f"\n…and {more} more" if more else ""))
    text = f"{'Exception' if exception else 'Spike'}: " + ", ".join(s.key for s in alert.spikes)
    return paginate(blocks, truncate(text, 300))
