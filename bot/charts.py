"""PNG charts of a ``StatsReport`` (matplotlib, Agg backend; no Slack here).

Figures are built with matplotlib's object API (``Figure`` + ``FigureCanvasAgg``)
rather than ``pyplot``, which keeps global state: listeners render charts in
several threads at once.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from bot.stats import StatsReport  # noqa: E402

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True, slots=True)
class Chart:
    filename: str
    title: str
    png: bytes


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight",
                   metadata={"Software": None})
    return buffer.getvalue()


def _barh(ax: object, counts: dict[str, int], title: str) -> None:
    names = list(counts)[:12][::-1]
    values = [counts[n] for n in names]
    ax.barh(names, values, color="#4a90d9")  # type: ignore[attr-defined]
    ax.set_title(title)  # type: ignore[attr-defined]
    for y, value in enumerate(values):
        ax.text(value, y, f" {value}", va="center", fontsize=8)  # type: ignore[attr-defined]


def volume_chart(report: StatsReport) -> Chart:
    figure = Figure(figsize=(10, 4))
    for i, (counts, title) in enumerate(((report.by_category, "By category"),
                                          (report.by_department, "By department"),
                                          (report.by_lang, "By language"))):
        _barh(figure.add_subplot(1, 3, i + 1), counts or {"none": 0}, title)
    figure.suptitle(f"Volume — {report.period.label}: {report.total} mentions")
    return Chart("volume.png", "Volume", _png(figure))


def heatmap_chart(report: StatsReport) -> Chart:
    figure = Figure(figsize=(10, 3.2))
    ax = figure.add_subplot(1, 1, 1)
    image = ax.imshow(report.heatmap, aspect="auto", cmap="Blues")
    ax.set_yticks(range(7), WEEKDAYS)
    ax.set_xticks(range(0, 24, 2), [f"{h:02d}" for h in range(0, 24, 2)])
    ax.set_xlabel("local hour")
    ax.set_title("Arrivals by weekday and hour (for staffing)")
    figure.colorbar(image, ax=ax, fraction=0.03)
    return Chart("heatmap.png", "Hourly volume", _png(figure))


def response_chart(report: StatsReport) -> Chart:
    figure = Figure(figsize=(8, 3.5))
    ax = figure.add_subplot(1, 1, 1)
    rows = [s for s in report.sla if s.p50 is not None]
    names = [s.category for s in rows]
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [s.p50 or 0 for s in rows], width=0.4, label="p50")
    ax.bar([x + 0.2 for x in xs], [s.p90 or 0 for s in rows], width=0.4, label="p90")
    for x, s in zip(xs, rows, strict=True):
        if s.sla_minutes is not None:
            ax.hlines(s.sla_minutes, x - 0.45, x + 0.45, colors="#d0021b", linewidth=2)
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("minutes to first response")
    ax.set_title("Time to first response against SLA (red)")
    ax.legend(loc="upper right")
    return Chart("response.png", "Time to first response", _png(figure))


def stats_charts(report: StatsReport) -> list[Chart]:
    """The charts that go beside the numbers (response times only when there are some)."""
    charts = [volume_chart(report), heatmap_chart(report)]
    if any(s.p50 is not None for s in report.sla):
        charts.append(response_chart(report))
    return charts
