"""The `curation` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from curation.config import ConfigError, load_recipe

app = typer.Typer(
    help="Turn PDFs and slide decks into filtered multi-page QA data for multi-image VLMs.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)


@app.callback()
def main() -> None:
    """curation: ingest documents, generate multi-page QA pairs, filter them, write shards."""


@app.command()
def run(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file (see recipes/).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: the recipe's).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Use only the first N input files.")
    ] = None,
    prompts: Annotated[Path, typer.Option(help="Folder holding the prompt sets.")] = Path(
        "prompts"
    ),
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: RAY_ADDRESS, or a local Ray).")
    ] = None,
) -> None:
    """Build the dataset a recipe describes: ingest, generate, filter, write."""
    from curation.pipeline import run_recipe  # Ray and torch load only when a run starts

    try:
        parsed = load_recipe(recipe)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task(f"{parsed.name}: documents", total=None, counts="starting Ray")

            def show(writer) -> None:
                c = writer.counts
                rejected = c.pairs_rejected + c.rejected_by_filter.get("parse", 0)
                counts = (
                    f"units {c.units} | kept {c.pairs_kept} | rejected {rejected}"
                    f" | errors {sum(c.errors_by_code.values())}"
                )
                bar.update(task, total=c.documents, completed=writer.documents_done, counts=counts)

            manifest = run_recipe(
                parsed,
                recipe_path=str(recipe),
                out_dir=out,
                limit=limit,
                prompts_root=prompts,
                address=address,
                on_progress=show,
            )
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    print_summary(manifest, out or parsed.output_dir())
    inputs = manifest["inputs"]
    if inputs and all(record["status"] in ("error", "duplicate", "missing") for record in inputs):
        console.print("[red]nothing could be processed[/red]")
        raise typer.Exit(1)


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
    for name, n in counts["rejected_by_filter"].items():
        table.add_row(f"  rejected by {name}", str(n))
    for code, n in counts["errors_by_code"].items():
        table.add_row(f"  errors: {code}", str(n))
    shards = manifest["files"]["data"]
    table.add_row("shards", f"{len(shards)} ({sum(s['rows'] for s in shards)} rows)")
    table.add_row("wall time", f"{manifest['wall_seconds']:.1f} s")
    console.print(table)
