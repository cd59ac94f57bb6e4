"""The `curation` command line: the typer commands, their options and exit codes (what they
show on the terminal is `curation.display`)."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path
from typing import Annotated, Literal, NoReturn

import typer

from curation.config import ConfigError, load_recipe
from curation.display import (
    RunDisplay,
    console,
    filter_progress,
    print_filter_report,
    print_stats,
    print_summary,
    show_static_site,
)

app = typer.Typer(
    help="Turn PDFs and slide decks into filtered multi-page QA data for multi-image VLMs.",
    no_args_is_help=True,
    add_completion=False,
)


def fail(exc: Exception, code: int, label: str = "error") -> NoReturn:
    """End the command: the error in red on stderr, and exit `code` (2 bad input or settings,
    1 refused or failed, 3 a run that cannot make progress)."""
    console.print(f"[red]{label}:[/red] {exc}")
    raise typer.Exit(code) from exc


@app.callback()
def main() -> None:
    """curation: ingest documents, generate multi-page QA pairs, filter them, write shards."""


NoCacheOption = Annotated[
    bool,
    typer.Option(
        "--no-cache",
        help="Send every LLM request again (generation and the judge), ignoring stored replies.",
    ),
]
EngineOption = Annotated[
    Literal["local", "openai", "vllm"] | None,
    typer.Option(
        "--engine",
        help="Generate with this engine instead of the recipe's, into the recipe's output "
        "folder with -ENGINE appended (e.g. out/docmatix-vllm).",
    ),
]


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
    restart: Annotated[
        bool,
        typer.Option(
            "--restart", help="Discard an interrupted run's progress instead of resuming it."
        ),
    ] = False,
    no_cache: NoCacheOption = False,
    engine: EngineOption = None,
) -> None:
    """Build the dataset a recipe describes: ingest, generate, filter, write."""
    from curation.preflight import RunBlocked
    from curation.run import run_recipe  # Ray and torch load only when a run starts

    try:
        parsed = recipe_to_run(recipe, engine, no_cache)
        with RunDisplay(parsed.name) as display:
            manifest = run_recipe(
                parsed,
                recipe_path=str(recipe),
                out_dir=out,
                limit=limit,
                prompts_root=prompts,
                address=address,
                restart=restart,
                on_progress=display.show,
                on_wait=display.wait,
            )
    except ConfigError as exc:
        fail(exc, 2)
    except RunBlocked as exc:
        fail(exc, 3, "cannot make progress")
    print_summary(manifest, out or parsed.output_dir())
    inputs = manifest["inputs"]
    if inputs and all(record["status"] in ("error", "duplicate", "missing") for record in inputs):
        console.print("[red]nothing could be processed[/red]")
        raise typer.Exit(1)


def recipe_to_run(recipe: Path, engine: str | None, no_cache: bool):
    """The recipe as `curation run` runs it: with --engine's engine, --no-cache's cache off."""
    parsed = load_recipe(recipe)
    if engine is not None:
        parsed = parsed.with_engine(engine)
    if no_cache:
        parsed.generate.cache = False
    return parsed


@app.command("filter")
def filter_command(
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help="Our shards (a folder with data/*.parquet), a Docmatix-layout parquet file or HF "
            "dataset folder, or a jsonl/parquet file with question, answer (and context) columns.",
        ),
    ],
    chain: Annotated[Path, typer.Option("--chain", help="Filter chain YAML (see filters/).")],
    out: Annotated[
        Path, typer.Option("--out", help="Output folder: data/, rejects/, funnel.json.")
    ],
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per filter batch.")] = 256,
) -> None:
    """Run a filter chain over an existing dataset: kept rows, rejects with reasons, the funnel."""
    from curation.refilter import filter_dataset

    try:
        with filter_progress() as bar:
            task = bar.add_task("reading", total=None)

            def show(phase: str, done: int, total: int) -> None:
                bar.update(task, description=phase, completed=done, total=total or None)

            report = filter_dataset(input_path, chain, out, batch_size=batch_size, on_progress=show)
    except ConfigError as exc:
        fail(exc, 2)
    print_filter_report(report, out)


@app.command()
def stats(
    out_dir: Annotated[Path, typer.Argument(help="Output folder of a run (e.g. out/docmatix).")],
) -> None:
    """Show a finished dataset's funnel and statistics (the numbers of its dataset card)."""
    from curation.output.finished import OutputFolderError
    from curation.output.stats import dataset_stats

    try:
        found = dataset_stats(out_dir)
    except OutputFolderError as exc:
        fail(exc, 2)
    print_stats(found, out_dir)


@app.command()
def export(
    out_dir: Annotated[Path, typer.Argument(help="Output folder of a run (e.g. out/docmatix).")],
    fmt: Annotated[
        Literal["mantis", "internvl", "llava"],
        typer.Option("--format", help="Training-code layout (curation.output.export.FORMATS)."),
    ],
    dest: Annotated[Path, typer.Option("--out", help="Folder for the annotations and images.")],
) -> None:
    """Write a dataset as Mantis, InternVL or LLaVA annotations plus image files."""
    from curation.output.export import export_dataset
    from curation.output.finished import OutputFolderError

    try:
        result = export_dataset(out_dir, fmt, dest)
    except (OutputFolderError, ConfigError) as exc:  # ConfigError: a folder refused (outdir)
        fail(exc, 2)
    console.print(
        f"{result.format}: {result.rows} samples, {result.images} images -> "
        + ", ".join(str(path) for path in result.files)
    )


@app.command()
def publish(
    out_dir: Annotated[Path, typer.Argument(help="Output folder of a run (e.g. out/docmatix).")],
    repo: Annotated[str, typer.Option("--repo", help="Hub dataset repo: ORG/NAME.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repo private.")] = False,
    revision: Annotated[
        str | None, typer.Option("--revision", help="Branch to push to (created if missing).")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the plan only: nothing written into OUT, no token, no network.",
        ),
    ] = False,
    with_site: Annotated[
        bool,
        typer.Option(
            "--with-site",
            help="Also build the offline browser (`curation view --static`) into report/site/ "
            "and push it; the card links it.",
        ),
    ] = False,
    site_max_samples: Annotated[
        int,
        typer.Option(
            "--site-max-samples",
            min=0,
            help="With --with-site: the site holds the first N samples and N rejects (the "
            "Hub's own viewer shows every row).",
        ),
    ] = 2000,
) -> None:
    """Verify the shards' checksums and push the folder to a Hugging Face Hub dataset repo. The
    folder's lock is held until the upload ends (a run writing it refuses the publish)."""
    from huggingface_hub.errors import HfHubHTTPError

    from curation.output.finished import OutputFolderError
    from curation.output.publish import PublishError, plan_publish, publish_lock
    from curation.output.publish import publish as push

    site = site_builder(site_max_samples) if with_site else None
    try:
        with contextlib.nullcontext() if dry_run else publish_lock(out_dir):
            plan = plan_publish(
                out_dir, repo, revision=revision, private=private, site=site, dry_run=dry_run
            )
            for line in plan.lines():
                typer.echo(line)
            if dry_run:
                typer.echo("dry run: nothing written into the folder, nothing uploaded")
                return
            url = push(plan)
    # ConfigError: the folder is locked by a run, or report/site/ is not a site of ours.
    except (OutputFolderError, ConfigError) as exc:
        fail(exc, 2)
    except PublishError as exc:
        fail(exc, 1, "refused")
    except (HfHubHTTPError, OSError) as exc:  # OSError: offline, no connection
        fail(exc, 1)
    typer.echo(f"published: {url}")


def stop_on_signal(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def site_builder(max_samples: int | None, compare: Path | None = None):
    """A function building an output folder's site into report/site/ under `root` (default: the
    folder itself); its overview."""
    from curation.output.card import SITE_DIR
    from curation.view.site import build_site, check_dest

    def build(out_dir: Path, root: Path | None = None) -> dict:
        check_dest(Path(out_dir) / SITE_DIR)  # the site it replaces, also when built elsewhere
        return build_site(out_dir, Path(root or out_dir) / SITE_DIR, compare, max_samples)

    return build


@app.command()
def view(
    out_dir: Annotated[
        Path,
        typer.Argument(
            metavar="OUT",
            help="Output folder of a run (finished or running) or of `curation filter`.",
        ),
    ],
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to serve on (0: a free one).")
    ] = 0,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to serve on. Anything but 127.0.0.1, localhost or ::1 shows the data "
            "to the network.",
        ),
    ] = "127.0.0.1",
    static: Annotated[
        bool,
        typer.Option(
            "--static",
            help="Write the site to OUT/report/site/ (it opens from file://, no server) instead "
            "of serving it.",
        ),
    ] = False,
    compare: Annotated[
        Path | None,
        typer.Option(
            "--compare",
            metavar="OTHER",
            help="Another output folder: list the pairs kept in one and rejected in the other "
            "(or present in one only), by qa_id.",
        ),
    ] = None,
    max_samples: Annotated[
        int | None,
        typer.Option("--max-samples", min=0, help="Put at most N samples (and N rejects) in it."),
    ] = None,
) -> None:
    """Browse a run's or a filter's output offline: samples with their pages, rejects with their
    reasons, errors, the funnel. Serves a read-only site on 127.0.0.1 until Ctrl-C; reloading
    the page shows a running run's progress. Only --static writes into OUT (report/site/)."""
    from curation.output.finished import OutputFolderError

    try:
        if static:
            show_static_site(out_dir, site_builder(max_samples, compare)(out_dir))
            return
        from curation.view.serve import serve

        signal.signal(signal.SIGTERM, stop_on_signal)  # kill: clean up like Ctrl-C
        serve(out_dir, host=host, port=port, compare=compare, max_samples=max_samples)
    except (OutputFolderError, ConfigError) as exc:  # ConfigError: a folder refused
        fail(exc, 2)
    except OSError as exc:  # the port is taken, or the address is not this host's
        fail(OSError(f"cannot serve {out_dir} on {host}:{port}: {exc}"), 1)
    except KeyboardInterrupt:
        console.print("stopped")


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Train config YAML (see train/).")],
    resume: Annotated[
        bool | None,
        typer.Option(
            "--resume/--no-resume",
            help="Continue from the last checkpoint (default: when the output folder has one).",
        ),
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=1, help="Override schedule.max_steps.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: the config's).")
    ] = None,
    ray_workers: Annotated[
        int | None,
        typer.Option("--ray-workers", min=1, help="Train in N Ray Train workers (one per GPU)."),
    ] = None,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address for --ray-workers (default: local).")
    ] = None,
) -> None:
    """Fine-tune a VLM on curated datasets: one device here, several GPUs under `accelerate
    launch -m curation.train`, several nodes with --ray-workers."""
    from curation.train.launch import prepare_config, run_training, summary_table

    try:
        parsed = prepare_config(config, max_steps=max_steps, output_dir=out)
        info = run_training(parsed, resume=resume, ray_workers=ray_workers, address=address)
    except ConfigError as exc:
        fail(exc, 2)
    if info is not None:
        console.print(summary_table(parsed.name, info))
