"""The card's plots: PNG files under report/, drawn by matplotlib's Agg canvas from the
dataset's numbers (`curation.output.stats`); a plot with nothing to show is not written.
"""

from __future__ import annotations

from pathlib import Path

from curation.output.finished import REPORT_DIR
from curation.output.stats import FUNNEL_STAGES, Distribution, SampleScan, funnel_rows, number_key

PLOTS = ("funnel", "pairs_per_unit", "answer_length", "judge_scores", "pages_per_unit")


def _figure(width: float = 6, height: float = 3.5):
    # A bare Figure drawn by the Agg canvas: no pyplot, no global backend state, no display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _counts_figure(dist: Distribution, title: str, xlabel: str, ylabel: str):
    """Bars for a quantity with few values (pairs or pages per unit)."""
    from matplotlib.ticker import MaxNLocator

    values, counts = dist.arrays()
    axes = _figure().add_subplot()
    axes.bar([number_key(v) for v in values], counts)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return axes.figure


def _histogram_figure(dist: Distribution, title: str, xlabel: str, ylabel: str):
    """A histogram for a quantity with many values (answer length, judge score)."""
    values, counts = dist.arrays()
    axes = _figure().add_subplot()
    axes.hist(values, weights=counts, bins=min(40, len(values)))
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return axes.figure


def _funnel_figure(stats: dict):
    from matplotlib.ticker import MaxNLocator

    rows = funnel_rows(stats)
    stages, losses = rows[: len(FUNNEL_STAGES)], rows[len(FUNNEL_STAGES) :]
    figure = _figure(9, 3.5 + 0.25 * len(losses))
    left, right = figure.subplots(1, 2)
    left.bar_label(left.barh(*zip(*reversed(stages), strict=True)), padding=2)
    left.set(title="Funnel", xlabel="count")
    if losses:
        right.bar_label(
            right.barh(*zip(*reversed(losses), strict=True), color="#C44E52"), padding=2
        )
        right.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        right.text(0.5, 0.5, "nothing rejected, no errors", ha="center", va="center")
        right.set_axis_off()
    right.set(title="Rejections and errors")
    return figure


def write_plots(report: Path, stats: dict, scan: SampleScan) -> dict[str, str | None]:
    """PNG plots under report/, by name: the card's relative link, or None when nothing to show."""
    report.mkdir(parents=True, exist_ok=True)
    figures = {"funnel": _funnel_figure(stats)}
    if scan.rows:
        figures["pairs_per_unit"] = _counts_figure(
            scan.pairs_per_unit, "Pairs per unit", "pairs", "units"
        )
        figures["pages_per_unit"] = _counts_figure(
            scan.pages_per_unit, "Pages (images) per unit", "pages", "units"
        )
        figures["answer_length"] = _histogram_figure(
            scan.answer_chars, "Answer length", "characters", "pairs"
        )
    if scan.judge_scores.counts:
        figures["judge_scores"] = _histogram_figure(
            scan.judge_scores, "Judge scores", "score", "pairs"
        )
    written: dict[str, str | None] = {}
    for key in PLOTS:
        path = report / f"{key}.png"
        if key in figures:
            figures[key].savefig(path, dpi=100)
            written[key] = f"{REPORT_DIR}/{path.name}"
        else:
            path.unlink(missing_ok=True)  # a plot left from an earlier run would mislead
            written[key] = None
    return written
