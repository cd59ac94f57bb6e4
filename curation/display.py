"""What the command line shows: a run's progress bar and the funnel printed after it, the
progress and table of `curation filter`, the numbers of `curation stats`, where a static site
went. The typer commands (`curation.cli`) decide what to do and with which exit code; this
module only draws, with rich, on stderr (`console`) unless a command's result goes to stdout.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from curation.outdir import some_of

console = Console(stderr=True)


class RunDisplay:
    """A run's progress bar (documents done, the funnel so far, the stage it waits for) and
    its notes: starting over, waiting."""

    def __init__(self, name: str) -> None:
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.name = name
        self.warned = False

    def __enter__(self) -> RunDisplay:
        self.bar.__enter__()
        self.task = self.bar.add_task(f"{self.name}: documents", total=None, counts="starting Ray")
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def show(self, p) -> None:
        if p.restarted and not self.warned:
            console.print(f"[yellow]starting over:[/yellow] {p.restarted}")
            self.warned = True
        counts = (
            f"units {p.units} | kept {p.pairs_kept} | rejected {p.pairs_rejected}"
            f" | errors {p.errors}"
            + (f" | resumed {p.resumed_units} units" if p.resumed_units else "")
            + (f" | waiting for {p.waiting}" if p.waiting else "")
        )
        self.bar.update(self.task, total=p.documents, completed=p.documents_done, counts=counts)

    def wait(self, message: str) -> None:
        console.print(f"[yellow]waiting:[/yellow] {message}")


def print_summary(manifest: dict, out_dir: Path) -> None:
    """The funnel of a finished run, as tables on the terminal."""
    counts = manifest["counts"]
    statuses: dict[str, int] = {}
    for record in manifest["inputs"]:
        statuses[record["status"]] = statuses.get(record["status"], 0) + 1
    table = Table(title=f"{manifest['recipe_name']} -> {out_dir}", show_header=False)
    table.add_row(
        "documents",
        f"{counts['documents']} ({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))})",
    )
    if counts.get("inputs_cut_by_limit"):
        table.add_row("  inputs left out by --limit", str(counts["inputs_cut_by_limit"]))
    for key in (
        "pages",
        "units",
        "pairs_generated",
        "pairs_kept",
        "pairs_rejected",
        "units_with_samples",
    ):
        table.add_row(key.replace("_", " "), str(counts[key]))
    for source, n in counts["pages_by_text_source"].items():
        table.add_row(f"  pages with text from {source}", str(n))
    for layout, n in (counts.get("units_by_layout") or {}).items():
        table.add_row(f"  units of layout {layout}", str(n))
    for reason, n in (counts.get("units_skipped") or {}).items():
        table.add_row(f"  units skipped ({reason}): no LLM call", str(n))
    if counts.get("pages_duplicate"):
        table.add_row("  pages repeating an earlier page", str(counts["pages_duplicate"]))
    for name, n in counts["rejected_by_filter"].items():
        table.add_row(f"  rejected by {name}", str(n))
    for code, n in counts["errors_by_code"].items():
        table.add_row(f"  errors: {code}", str(n))
    shards = manifest["files"]["data"]
    table.add_row("shards", f"{len(shards)} ({sum(s['rows'] for s in shards)} rows)")
    table.add_row("wall time", f"{manifest['wall_seconds']:.1f} s")
    if manifest.get("resumed"):
        table.add_row("resumed", "yes: finished work of an interrupted run was reused")
    console.print(table)
    for key, meaning in (
        ("changed", "changed since the interrupted run: ingested again, old units dropped"),
        ("removed", "no longer among the inputs: their units dropped"),
    ):
        sources = manifest.get("resume", {}).get(key)
        if sources:  # unwrapped: whole paths, ready to copy
            console.print(f"inputs {meaning}: {some_of(sources)}", soft_wrap=True, markup=False)


def filter_progress() -> Progress:
    """The progress bar of `curation filter`: the phase, rows done of rows known."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        console=console,
    )


def print_filter_report(report: dict, out: Path) -> None:
    """The table of a finished `curation filter`: each filter's counts, then the inputs it
    could not read."""
    table = Table(title=f"{report['chain']}: {report['input']} -> {out} ({report['layout']})")
    for column in ("filter", "seen", "rejected", "kept"):
        table.add_column(column, justify="left" if column == "filter" else "right")
    for row in report["filters"]:
        table.add_row(row["filter"], str(row["seen"]), str(row["rejected"]), str(row["kept"]))
    for name in report["inactive"]:
        table.add_row(f"{name} (inactive: no engine)", "-", "-", "-")
    table.add_section()
    table.add_row(
        "pairs", str(report["pairs_in"]), str(report["pairs_rejected"]), str(report["pairs_kept"])
    )
    table.add_row(
        "rows",
        str(report["rows_in"]),
        str(report["rows_in"] - report["rows_out"]),
        str(report["rows_out"]),
    )
    console.print(table)
    for entry in report["inputs"]:
        if entry["status"] == "error":  # unwrapped: whole paths, ready to copy
            said = f"not read ({entry['code']}): {entry['path']}: {entry['message']}"
            console.print(said, soft_wrap=True, markup=False)


def print_stats(found: dict, out_dir: Path) -> None:
    """`curation stats`: a finished dataset's funnel and statistics, on stdout."""
    from curation.output.stats import funnel_rows

    table = Table(title=f"{found['name']} ({out_dir})", show_header=False)
    for label, n in funnel_rows(found):
        table.add_row(label, str(n))
    table.add_row("samples", f"{found['rows']} rows in {found['shards']} shards")
    for key, label in (
        ("pairs_per_unit", "pairs per unit"),
        ("pages_per_unit", "pages per unit"),
        ("answer_chars", "answer length (chars)"),
        ("judge_scores", "judge score"),
    ):
        summary = (found[key] or {}).get("summary")
        shown = "-"
        if summary:
            shown = f"mean {summary['mean']} (min {summary['min']:g}, max {summary['max']:g})"
        table.add_row(label, shown)
    Console().print(table)


def show_static_site(out_dir: Path, overview: dict) -> None:
    """Where a static site went and how to open it."""
    from curation.output.card import SITE_DIR

    site = Path(out_dir) / SITE_DIR
    samples = overview["samples"]
    whole = samples.get("truncated_from")
    shown = f"{samples['total']} of {whole}" if whole else str(samples["total"])
    typer.echo(
        f"site: {site} ({overview['status']}: {shown} samples, {overview['rejects']['total']} "
        f"rejects, {overview['errors']['total']} errors)"
    )
    typer.echo(f"open {site / 'index.html'} in a browser (no server needed)")
