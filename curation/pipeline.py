"""The Ray Data graph: files -> Unit rows -> Outcome rows (pairs with their filter decisions),
streamed into the run's journal. Which stage follows which, with what resources
(`curation.preflight.stage_asks`); every stage is a plain function or class of its package.
Ray start-up is `curation.runtime`; the run around the graph (inputs, journal, assembly into
shards) is `curation.run`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import ray
from ray.data import ActorPoolStrategy

from curation.config import GenerateConfig, IngestConfig, Recipe, UnitsConfig
from curation.files import path_text
from curation.filters.chain import load_chain
from curation.generate import QAGenerator
from curation.generate.engines.vllm import VLLMRows, build_vllm_stage, output_columns
from curation.generate.prompts import resolve_prompt_dir
from curation.ingest import ingest_document
from curation.ingest.ocr_stage import OCRStage
from curation.ingest.pagedup import dups_from_json, dups_to_json, find_duplicates, signatures_of
from curation.ingest.quality import mark_textless
from curation.output.journal import Journal, Progress
from curation.preflight import stage_asks, vllm_on_cpu
from curation.schema import OCR_UNIT_SCHEMA, OUTCOME_SCHEMA, UNIT_SCHEMA
from curation.watchdog import Watchdog


def ingest_batch(
    batch: pa.Table,
    ingest: IngestConfig,
    units: UnitsConfig,
    skip: frozenset[str] = frozenset(),
    to_ocr: bool = False,
    needs_text: bool = False,
) -> Iterator[pa.Table]:
    """Ray stage: one input file per batch in, its Unit rows out one at a time (streaming).
    Units in `skip` (finished before an interruption) are left out; an item's `page_dups`
    (JSON) marks its pages that repeat earlier pages of the run. `to_ocr`: the OCR stage
    follows, so the rows carry the pages rendered for it (OCR_UNIT_SCHEMA). `needs_text`: the
    model reads text only, so a unit without any (and no page left for OCR) is skipped."""
    schema = OCR_UNIT_SCHEMA if to_ocr else UNIT_SCHEMA
    for item in batch.to_pylist():
        dups = dups_from_json(item.get("page_dups"))
        path = os.fsdecode(item["path"])  # the real name, as bytes through Arrow
        for row in ingest_document(path, ingest, units, item["source"], dups):
            if row["unit_id"] not in skip:
                row = mark_textless(row) if needs_text else row
                yield pa.Table.from_pylist([row], schema=schema)


class OCRActor:
    """Ray actor: fills in the text of the pages that need OCR, with one OCR model for its
    life, loaded on the first such page (a run without one loads none). It asks for no CPU
    (onnxruntime spreads a page over the node's cores anyway), so it never holds a 1-CPU node's
    only CPU; `needs_text`: see `ingest_batch`."""

    def __init__(self, ingest: IngestConfig, needs_text: bool = False) -> None:
        self.stage = OCRStage(ingest)
        self.needs_text = needs_text

    def __call__(self, batch: pa.Table) -> pa.Table:
        units = self.stage(batch.to_pylist())
        if self.needs_text:
            units = [mark_textless(unit) for unit in units]
        return pa.Table.from_pylist(units, schema=UNIT_SCHEMA)


class GenerateActor:
    """Ray actor: holds one engine (model loaded once) and generates pairs for batches of units."""

    def __init__(self, generate: GenerateConfig, units: UnitsConfig) -> None:
        self.generator = QAGenerator(generate, units)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return pa.Table.from_pylist(self.generator(batch.to_pylist()), schema=OUTCOME_SCHEMA)


def filter_batch(batch: pa.Table, chain_path: str, cache: bool = True) -> pa.Table:
    """Ray stage: fill in every pair's filter decisions (the chain's filters; its dedup runs
    over the whole dataset when the run assembles it, `curation.run.assemble`)."""
    outcomes = load_chain(chain_path, cache)(batch.to_pylist())
    return pa.Table.from_pylist(outcomes, schema=OUTCOME_SCHEMA)


def build_units(
    recipe: Recipe,
    files: list[Path | str],
    skip: frozenset[str] = frozenset(),
    page_dups: dict[str, dict[int, str]] | None = None,
) -> ray.data.Dataset:
    """Files -> Unit rows: one ingest task per document, then OCR actors for pages that need it.
    `page_dups`: by source, the pages that repeat an earlier page (`page_duplicates`). Without
    page images for the model (generate.images off), a unit with no text is skipped."""
    asks = stage_asks(recipe)
    needs_text = not recipe.generate.images
    items = [
        {
            # Bytes: Arrow holds text as UTF-8 only, and a file name may be any bytes.
            "path": os.fsencode(input_path(path)),
            "source": path_text(path),
            "page_dups": dups_to_json((page_dups or {}).get(path_text(path), {})),
        }
        for path in files
    ]
    units = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        ingest_batch,
        batch_size=1,
        batch_format="pyarrow",
        fn_kwargs={
            "ingest": recipe.ingest,
            "units": recipe.units,
            "skip": skip,
            "to_ocr": "ocr" in asks,
            "needs_text": needs_text,
        },
        **asks["ingest"].ray_args(),
    )
    if "ocr" not in asks:
        return units
    # An actor's other ask also keeps Ray from fusing the ingest tasks into it, so documents
    # are read in parallel while the models work.
    return units.map_batches(
        OCRActor,
        batch_size=4,
        batch_format="pyarrow",
        compute=ActorPoolStrategy(size=recipe.ingest.ocr_workers),
        fn_constructor_kwargs={"ingest": recipe.ingest, "needs_text": needs_text},
        **asks["ocr"].ray_args(),
    )


def input_path(path: Path | str) -> str:
    """An input as a task reads it: a URI as it is, a local path made absolute."""
    return path if isinstance(path, str) else str(path.resolve())


def page_duplicates(recipe: Recipe, files: list[Path | str]) -> dict[str, dict[int, str]]:
    """The page-dedup pre-pass over every input of the run, in input order: each document's
    page signatures in a Ray task of its own (cached on disk by content and settings), then
    the duplicates found in the driver. By source: {page: "doc_id:page" it repeats}."""
    cache_dir = str(signature_cache_dir(recipe).resolve())
    sign = ray.remote(signatures_of).options(**stage_asks(recipe)["ingest"].ray_args())
    refs = [sign.remote(input_path(path), recipe.ingest, cache_dir) for path in files]
    documents = ray.get(refs)
    found = find_duplicates(documents, recipe.ingest.page_dedup.max_distance)
    return {path_text(path): dups for path, dups in zip(files, found, strict=True) if dups}


def signature_cache_dir(recipe: Recipe) -> Path:
    """Page signatures are kept beside the response cache (.cache/pagedup by default)."""
    return Path(recipe.generate.cache_dir).parent / "pagedup"


def vllm_rows(recipe: Recipe, prompts_root: Path) -> VLLMRows:
    """The rows in and out of Ray's vLLM stage for a recipe, as plain data for the workers
    (the prompt set as the driver found it, absolute); its generator is built here once, so a
    prompt that does not render stops the run before it starts."""
    rows = VLLMRows(workers_generate(recipe, prompts_root), recipe.units)
    rows.generator  # noqa: B018 -- checks every prompt now, in the driver
    return rows


def workers_generate(recipe: Recipe, prompts_root: Path) -> GenerateConfig:
    """The generate settings as the workers get them: the prompt set as the driver found it
    (an absolute folder), as a worker's working folder may be another one."""
    prompt_dir = resolve_prompt_dir(recipe.generate.prompt_set, prompts_root)
    return recipe.generate.model_copy(update={"prompt_set": str(prompt_dir)})


def vllm_generate(recipe: Recipe, units: ray.data.Dataset, prompts_root: Path) -> ray.data.Dataset:
    """Generation with vLLM's offline engine as a Ray Data stage, on GPUs or CPUs
    (`vllm_on_cpu`)."""
    rows = vllm_rows(recipe, prompts_root)
    processor = build_vllm_stage(
        recipe.generate,
        preprocess=rows.request,
        postprocess=output_columns,
        on_cpu=vllm_on_cpu(recipe.generate),
    )
    return processor(units).map_batches(rows.outcomes, batch_format="pyarrow")


def generate_and_filter(
    recipe: Recipe, units: ray.data.Dataset, prompts_root: Path, chain_path: Path
) -> ray.data.Dataset:
    """Unit rows -> Outcome rows with every pair's filter decisions."""
    if recipe.generate.engine == "vllm":
        outcomes = vllm_generate(recipe, units, prompts_root)
    else:
        generate = workers_generate(recipe, prompts_root)
        outcomes = units.map_batches(
            GenerateActor,
            batch_size=recipe.generate.batch_size,
            batch_format="pyarrow",
            compute=ActorPoolStrategy(size=recipe.generate.workers),
            fn_constructor_kwargs={"generate": generate, "units": recipe.units},
            **stage_asks(recipe)["generate"].ray_args(),
        )
    return outcomes.map_batches(
        filter_batch,
        batch_format="pyarrow",
        fn_kwargs={"chain_path": str(chain_path), "cache": recipe.generate.cache},
        **stage_asks(recipe)["filter"].ray_args(),
    )


# Ray Data operator names -> the stages the progress line and the watchdog's reports name.
STAGE_NAMES = {
    "ingest_batch": "ingest",
    "OCRActor": "ocr",
    "GenerateActor": "generate",
    "vLLM": "generate",
    "filter_batch": "filter",
}


def run_graph(
    recipe: Recipe,
    todo: list[Path | str],
    journal: Journal,
    prompts_root: Path,
    chain_path: Path,
    on_progress: Callable[[Progress], None] | None,
    on_wait: Callable[[str], None] | None,
    page_dups: dict[str, dict[int, str]] | None = None,
) -> None:
    """Stream the graph's Outcome rows for `todo` into the journal, under the watchdog: a stall
    is reported through `on_wait` and names the waiting stage in the progress, or (run.on_stall:
    fail) ends the run with RunBlocked, the journal kept for a rerun. `page_dups`: see
    `build_units`."""

    def report(stage: str | None, message: str | None) -> None:
        journal.progress.waiting = stage
        if message and on_wait:
            on_wait(message)
        if on_progress:
            on_progress(journal.progress)

    watchdog = Watchdog(recipe.run, STAGE_NAMES, report)
    try:
        with watchdog.watching():
            units = build_units(recipe, todo, frozenset(journal.units_done()), page_dups)
            dataset = generate_and_filter(recipe, units, prompts_root, chain_path)
            # No prefetch: Ray's prefetching iterator holds a finished block back until the
            # next one arrives, so a run stopped behind a hung stage would lose it.
            batches = dataset.iter_batches(
                batch_format="pyarrow", batch_size=None, prefetch_batches=0
            )
            # Closed on any exit: an error in this loop (or an interrupt) stops the executor,
            # its tasks and actors now, not when the traceback that holds them is collected.
            with contextlib.closing(iter(batches)) as stream:
                for batch in stream:
                    journal.append(batch)
                    if on_progress:
                        on_progress(journal.progress)
    except Exception as exc:
        if watchdog.blocked:  # raised in Ray's executor thread, and re-raised here by Ray
            raise watchdog.blocked from exc
        raise
