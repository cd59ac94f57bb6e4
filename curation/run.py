"""A run of a recipe: its inputs, its journal (what an interrupted run already did), the graph
(`curation.pipeline`) for what is left, then the assembly: the whole-dataset dedup, the shards,
the manifest and the card (`curation.output`)."""

from __future__ import annotations

import platform
import shutil
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from curation import __version__
from curation.config import ConfigError, Recipe
from curation.files import path_text
from curation.filters.chain import FILTER_TYPES, chain_entries, chain_specs, load_chain
from curation.filters.dataset_dedup import dataset_checker, dedup_outcome, outcome_pairs
from curation.filters.dedup import DEDUP_STAGING
from curation.generate import QAGenerator
from curation.generate.prompts import resolve_prompt_dir
from curation.ingest import Inputs, current_document_id, expand_inputs
from curation.outdir import OutputFolder
from curation.output.card import write_card
from curation.output.journal import JOURNAL, Journal, Progress
from curation.output.shards import DatasetWriter
from curation.pipeline import page_duplicates, run_graph, stage_asks, stages
from curation.preflight import preflight
from curation.runtime import init_ray
from curation.seeding import content_id

VERSIONED_PACKAGES = ("ray", "pymupdf", "transformers", "torch", "datasets", "pyarrow", "pydantic")


def package_versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "curation": __version__}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def run_identity(recipe: Recipe, chain_path: Path, prompt_dir: Path) -> str:
    """What an interrupted run must share with its resumption: the recipe's settings and the
    bytes of the filter chain and of the prompt templates (the generation set, any judge's and
    a verifying grounding's), so that editing a prompt or a filter and rerunning starts over
    instead of mixing outcomes."""
    specs = chain_specs(chain_path)
    folders = [prompt_dir]
    for _, entry in chain_entries(specs):
        kind = entry.get("type")
        if kind == "judge" or (kind == "grounding" and entry.get("unsettled") == "verify"):
            default = FILTER_TYPES[kind].model_fields["prompts"].default
            folders.append(resolve_prompt_dir(entry.get("prompts", default)))
    parts: list[object] = [recipe.content_hash()]
    parts += [path.read_bytes() for path, _ in specs]
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                parts += [path.relative_to(folder).as_posix(), path.read_bytes()]
    return content_id(*parts, length=64)


def run_recipe(recipe: Recipe, *, out_dir: Path | None = None, **options: Any) -> dict:
    """Build the dataset a recipe describes (options: see `build_dataset`) in its output folder,
    claimed and locked for the run before anything else (`curation.outdir`); returns the
    manifest that was written."""
    out_dir = out_dir or recipe.output_dir()
    with OutputFolder(out_dir, "run", recipe.content_hash()):
        return build_dataset(recipe, out_dir=out_dir, **options)


def build_dataset(
    recipe: Recipe,
    *,
    out_dir: Path,
    recipe_path: str | None = None,
    limit: int | None = None,
    prompts_root: Path = Path("prompts"),
    address: str | None = None,
    restart: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> dict:
    """Build the dataset a recipe describes into `out_dir`, which the caller holds; returns the
    manifest that was written.

    An interrupted run of the same recipe into the same folder is resumed: finished documents
    and units are not processed again (`restart=True` discards them); the journaled work of an
    input whose bytes changed since, or that is no longer an input, is dropped.
    """
    started = time.monotonic()
    inputs = run_inputs(recipe, limit)
    files = inputs.files
    chain_path = recipe.chain_file()
    load_chain(str(chain_path))  # fail on a bad chain or prompt set before Ray starts
    QAGenerator(recipe.generate, recipe.units, prompts_root)  # checks the prompt set; no model
    prompt_dir = resolve_prompt_dir(recipe.generate.prompt_set, prompts_root)
    if restart:
        shutil.rmtree(out_dir / JOURNAL, ignore_errors=True)
    paths = {path_text(path): path for path in files}
    journal = Journal(
        out_dir,
        run_identity(recipe, chain_path, prompt_dir),
        list(paths),
        lambda source: current_document_id(paths[source], recipe.ingest.max_file_mb),
    )
    if on_progress:
        on_progress(journal.progress)
    finished = journal.documents_done()
    todo = [path for path in files if path_text(path) not in finished]
    if todo:
        init_ray(address)
        table = stages(recipe)
        for warning in preflight(stage_asks(table)):  # RunBlocked if a stage fits no node
            if on_wait:
                on_wait(warning)
        # Every input, finished ones too: a resumed run takes the same decisions.
        dups = page_duplicates(recipe, files) if recipe.ingest.page_dedup.enabled else None
        run_graph(recipe, table, todo, journal, prompts_root, on_progress, on_wait, dups)
    writer = assemble(recipe, journal, inputs, out_dir, address)
    manifest = writer.close(manifest_fields(recipe, recipe_path, journal, started))
    journal.remove()
    write_card(out_dir)
    return manifest


def run_inputs(recipe: Recipe, limit: int | None) -> Inputs:
    """The recipe's input files (local paths and URIs), the first `limit` of them, and the
    names it gives that cannot be read. Refused when nothing at all is there: no file matches,
    and every name without glob characters is missing."""
    try:
        inputs = expand_inputs(recipe.inputs)
    except ValueError as exc:  # a URI whose filesystem driver is missing or that is malformed
        raise ConfigError(f"inputs: {exc}") from exc
    if not inputs.files and all(error.code == "missing" for error in inputs.refused):
        raise ConfigError(f"inputs: no file matches {recipe.inputs}")
    return inputs.limited(limit)


def assemble(
    recipe: Recipe, journal: Journal, inputs: Inputs, out_dir: Path, address: str | None
) -> DatasetWriter:
    """The journal's Outcomes, in dataset order, through the whole-dataset dedup (in
    memory, or in Ray for large runs) into the shard writer of `out_dir`, after the error rows
    of the inputs that could not be read."""
    dedup = load_chain(str(recipe.chain_file())).dedup
    seen = None
    if dedup:
        seen = dataset_checker(
            dedup,
            journal.progress.pairs_kept,
            out_dir / DEDUP_STAGING,
            lambda: (pair for outcome in journal.outcomes() for pair in outcome_pairs(outcome)),
            address,
        )
    writer = DatasetWriter(
        out_dir,
        recipe.output.rows_per_shard,
        [path_text(path) for path in inputs.files],
        recipe.output.shard_mb,
        cut_by_limit=inputs.cut_by_limit,
    )
    for error in inputs.refused:
        writer.refuse(error)
    for outcome in journal.outcomes():
        writer.add(dedup_outcome(outcome, dedup, seen) if dedup and seen else outcome)
    return writer


def manifest_fields(
    recipe: Recipe, recipe_path: str | None, journal: Journal, started: float
) -> dict:
    """What the manifest says of the run besides its counts and files."""
    chain = load_chain(str(recipe.chain_file()))
    return {
        "recipe_name": recipe.name,
        "recipe_path": recipe_path,
        "recipe_hash": recipe.content_hash(),
        "recipe": recipe.model_dump(mode="json"),
        "filter_chain": chain.name,
        "filters_inactive": chain.inactive,
        "versions": package_versions(),
        "resumed": journal.resumed,
        "resume": {"changed": journal.progress.changed, "removed": journal.progress.removed},
        "wall_seconds": round(time.monotonic() - started, 2),
    }
