"""The Ray Data graph: files -> units -> generated pairs -> filtered outcomes -> shards.

This is the only module that imports Ray; every stage it composes is a plain function or class.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import platform
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import ray
import yaml
from ray.data import ActorPoolStrategy, DataContext, TaskPoolStrategy

from curation import __version__
from curation.config import ConfigError, GenerateConfig, IngestConfig, Recipe, UnitsConfig
from curation.filters import FilterChain
from curation.filters.dedup import (
    DedupFilter,
    Deduplicator,
    KnownVerdicts,
    Verdict,
    occurrence_keys,
    pair_text,
    ray_near_duplicates,
)
from curation.filters.judge import resolve_prompt_folder
from curation.generate import QAGenerator
from curation.generate.cache import ResponseCache, request_key
from curation.generate.engines.base import ChatRequest, EngineResult
from curation.generate.engines.vllm import (
    RESULT_COLUMNS,
    build_vllm_stage,
    request_row,
    result_from_row,
)
from curation.generate.prompts import resolve_prompt_dir
from curation.ingest import current_document_id, expand_inputs, ingest_document
from curation.ingest.ocr_stage import OCRStage
from curation.outdir import OutputFolder
from curation.output.card import write_card
from curation.output.journal import JOURNAL, Journal, Progress
from curation.output.shards import DatasetWriter
from curation.preflight import preflight, stage_asks
from curation.schema import OUTCOME_SCHEMA, UNIT_SCHEMA
from curation.seeding import content_id
from curation.watchdog import Watchdog

VERSIONED_PACKAGES = ("ray", "pymupdf", "transformers", "torch", "datasets", "pyarrow", "pydantic")


def ingest_batch(
    batch: pa.Table, ingest: IngestConfig, units: UnitsConfig, skip: frozenset[str] = frozenset()
) -> Iterator[pa.Table]:
    """Ray stage: one input file per batch in, its Unit rows out one at a time (streaming).
    Units in `skip` (finished before an interruption) are left out."""
    for item in batch.to_pylist():
        for row in ingest_document(item["path"], ingest, units, source=item["source"]):
            if row["unit_id"] not in skip:
                yield pa.Table.from_pylist([row], schema=UNIT_SCHEMA)


def ocr_batch(batch: pa.Table, ingest: IngestConfig) -> pa.Table:
    """Ray stage: fill in the text of the pages that need OCR. A task, not an actor: the OCR
    model loads only in a task whose batch has such a page, and no idle model holds a node."""
    return pa.Table.from_pylist(OCRStage(ingest)(batch.to_pylist()), schema=UNIT_SCHEMA)


class GenerateActor:
    """Ray actor: holds one engine (model loaded once) and generates pairs for batches of units."""

    def __init__(self, generate: GenerateConfig, units: UnitsConfig, prompts_root: str) -> None:
        self.generator = QAGenerator(generate, units, Path(prompts_root))

    def __call__(self, batch: pa.Table) -> pa.Table:
        return pa.Table.from_pylist(self.generator(batch.to_pylist()), schema=OUTCOME_SCHEMA)


@lru_cache(maxsize=4)
def load_chain(path: str, cache: bool = True) -> tuple[FilterChain, DedupFilter | None]:
    """The chain's per-batch filters, and its dedup entry, which runs over the whole dataset
    when it is assembled (in input order, so its choices do not depend on batching). Without
    `cache` (`--no-cache`) the judge sends every request again too."""
    chain = FilterChain.load(path)
    if not cache:
        chain.send_again()
    return chain.split()


def filter_batch(batch: pa.Table, chain_path: str, cache: bool = True) -> pa.Table:
    """Ray stage: fill in every pair's filter decisions."""
    outcomes = load_chain(chain_path, cache)[0](batch.to_pylist())
    return pa.Table.from_pylist(outcomes, schema=OUTCOME_SCHEMA)


def alive_pairs(outcome: dict) -> list[dict]:
    """The pairs of an Outcome row that passed every filter so far (the ones dedup checks)."""
    return [p for p in outcome["pairs"] if all(d["passed"] for d in p["decisions"])]


DEDUP_STAGING = ".dedup"  # the pairs handed to Ray's dedup, removed once it is done
DEDUP_FILE_ROWS = 50_000  # pairs per Parquet file handed to Ray's dedup (one read task each)


class RayDedup:
    """A whole dataset's duplicates found with Ray instead of one in-memory index: the pairs
    that passed every other filter are added in dataset order and streamed to Parquet files in
    `folder`, `verdicts` groups them by LSH band in Ray (`ray_near_duplicates`), and only the
    duplicates come back. Used by a run's assembly and by `curation filter`."""

    SCHEMA = pa.schema([("qa_id", pa.string()), ("text", pa.string()), ("order", pa.int64())])

    def __init__(self, dedup: DedupFilter, folder: Path) -> None:
        self.dedup, self.folder = dedup, folder
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.rows: list[dict] = []
        self.added = self.files = 0

    def add(self, qa_id: str, text: str) -> None:
        self.rows.append({"qa_id": qa_id, "text": text, "order": self.added})
        self.added += 1
        if len(self.rows) >= DEDUP_FILE_ROWS:
            self._write()

    def _write(self) -> None:
        name = f"pairs-{self.files:06d}.parquet"
        pq.write_table(pa.Table.from_pylist(self.rows, schema=self.SCHEMA), self.folder / name)
        self.rows = []
        self.files += 1

    def verdicts(self) -> KnownVerdicts:
        """The duplicates among the pairs added; the staging folder is removed."""
        if self.rows or not self.files:
            self._write()
        dedup = self.dedup
        found = ray_near_duplicates(
            ray.data.read_parquet(str(self.folder)),
            "text",
            "qa_id",
            order_col="order",
            threshold=dedup.threshold,
            num_perm=dedup.num_perm,
            ngram=dedup.ngram,
            seed=dedup.seed,
            exact=dedup.exact,
        )
        verdicts = {
            row["qa_id"]: Verdict(True, row["duplicate_of"], row["similarity"], row["kind"])
            for row in found.iter_rows()
        }
        shutil.rmtree(self.folder, ignore_errors=True)
        return KnownVerdicts(verdicts)


def ray_dedup_verdicts(journal: Journal, dedup: DedupFilter, folder: Path) -> KnownVerdicts:
    """A run's dedup in Ray (`RayDedup`) over the pairs of its journal, in dataset order."""
    staged = RayDedup(dedup, folder)
    for outcome in journal.outcomes():
        alive = alive_pairs(outcome)
        # Identical pairs of one unit share an id: each is a pair of its own (see dedup_outcome).
        for pair, key in zip(alive, occurrence_keys([p["qa_id"] for p in alive]), strict=True):
            staged.add(key, pair_text(pair["question"], pair["answer"]))
    return staged.verdicts()


def dedup_outcome(outcome: dict, dedup: DedupFilter, seen: Deduplicator | KnownVerdicts) -> dict:
    """Add the dedup decision to each pair that passed every other filter (the first of a
    group of duplicates, in dataset order, is kept)."""
    alive = alive_pairs(outcome)
    # Two identical pairs of one unit share a content-hash id: numbered apart, the second is an
    # exact duplicate of the first rather than the first one fed again.
    verdicts = seen.check(
        [pair_text(p["question"], p["answer"]) for p in alive],
        occurrence_keys([p["qa_id"] for p in alive]),
    )
    for pair, verdict in zip(alive, verdicts, strict=True):
        pair["decisions"].append(vars(dedup.decision(verdict)))
    return outcome


def package_versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "curation": __version__}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def init_ray(address: str | None = None) -> None:
    """Start (or join) Ray, quietly, with the data settings every run relies on."""
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # our progress display replaces its log
    if not ray.is_initialized():
        target = address or os.environ.get("RAY_ADDRESS") or ""
        if target.startswith("ray://"):
            # Ray Data's streaming executor does not run over Ray Client (it fails mid-run).
            raise ConfigError(
                f"address {target}: Ray Client (ray://) cannot run the pipeline; pass the "
                "cluster's HOST:PORT from a node of the cluster, or use `ray job submit`"
            )
        host, _, port = target.rpartition(":")
        if host and port.isdigit():
            # Ray itself keeps retrying an address where nothing listens, for many minutes.
            try:
                socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
            except OSError as exc:
                raise ConfigError(f"cannot join the Ray cluster at {target}: {exc}") from exc
        try:
            ray.init(
                address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR"
            )
        except ConnectionError as exc:
            raise ConfigError(
                f"cannot join the Ray cluster at {target} ({exc}): check the address; a cluster "
                "started by `ray start` also needs RAY_AUTH_MODE=token here, with its token in "
                "~/.ray/auth_token or RAY_AUTH_TOKEN"
            ) from exc
    context = DataContext.get_current()
    context.execution_options.preserve_order = True  # same inputs, same row order, same shards
    context.enable_progress_bars = False


def build_units(
    recipe: Recipe, files: list[Path | str], skip: frozenset[str] = frozenset()
) -> ray.data.Dataset:
    """Files -> Unit rows: one ingest task per document, then OCR tasks for pages that need it."""
    asks = stage_asks(recipe)
    items = [
        {"path": path if isinstance(path, str) else str(path.resolve()), "source": str(path)}
        for path in files
    ]
    units = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        ingest_batch,
        batch_size=1,
        batch_format="pyarrow",
        fn_kwargs={"ingest": recipe.ingest, "units": recipe.units, "skip": skip},
        **asks["ingest"].ray_args(),
    )
    if "ocr" not in asks:
        return units
    # The OCR tasks' memory ask also keeps Ray from fusing them into the ingest tasks (which
    # would then all ask for the OCR model's memory), so documents are read in parallel.
    return units.map_batches(
        ocr_batch,
        batch_size=4,
        batch_format="pyarrow",
        compute=TaskPoolStrategy(size=recipe.ingest.ocr_workers),
        fn_kwargs={"ingest": recipe.ingest},
        **asks["ocr"].ray_args(),
    )


class VLLMRows:
    """Rows in and out of Ray's vLLM stage: a unit becomes a request row carrying the unit
    (pickled, so no unit column meets the stage's own), and comes back as an Outcome row.

    With `generate.cache`, a request already answered is not sent again: its row carries the
    stored reply and goes through the stage as a one-token placeholder (as ingest error rows
    do), and fresh replies are stored on the way out, as `CachedEngine` does for other engines.
    """

    UNIT = "curation_unit"
    CACHED = "curation_cached_reply"  # the stored reply (JSON) of an answered request, or None
    KEY = "curation_cache_key"
    CARRIED = (UNIT, CACHED, KEY)

    def __init__(self, recipe: Recipe, prompts_root: Path) -> None:
        self.generator = QAGenerator(recipe.generate, recipe.units, prompts_root)
        cfg = recipe.generate
        self.cache = ResponseCache(cfg.cache_dir) if cfg.cache else None

    @staticmethod
    def placeholder(unit: dict) -> ChatRequest:
        """A one-token request for a row whose reply is not needed from vLLM."""
        return ChatRequest(f"{unit['unit_id']}|-", [{"role": "user", "content": "-"}], 1)

    def request(self, unit: dict) -> dict:
        carried = {self.UNIT: pickle.dumps(unit), self.CACHED: None, self.KEY: None}
        if unit["error_code"] is not None:  # an ingest error rides along, ignored on the way out
            return {**request_row(self.placeholder(unit)), **carried}
        request = self.generator.request_for(unit)
        if self.cache is not None:
            key = request_key(self.generator.model_name, request)
            stored = self.cache.get(key)
            if stored is not None:
                stored = {**stored, "request_id": request.request_id}
                carried[self.CACHED] = json.dumps(stored, ensure_ascii=False)
                return {**request_row(self.placeholder(unit)), **carried}
            self.cache.log_sent([key])
            carried[self.KEY] = key
        return {**request_row(request), **carried}

    def outcomes(self, batch: pa.Table) -> pa.Table:
        rows = []
        for row in batch.to_pylist():
            unit = pickle.loads(row[self.UNIT])
            if unit["error_code"] is not None:
                result = None
            elif row.get(self.CACHED):
                result = EngineResult(**json.loads(row[self.CACHED]))
            else:
                result = result_from_row(row)
                if row.get(self.KEY) and self.cache and result.finish_reason != "error":
                    self.cache.put(row[self.KEY], dataclasses.asdict(result))
            rows.append(self.generator.outcome(unit, result))
        return pa.Table.from_pylist(rows, schema=OUTCOME_SCHEMA)


def vllm_generate(recipe: Recipe, units: ray.data.Dataset, prompts_root: Path) -> ray.data.Dataset:
    """Generation with vLLM's offline engine as a Ray Data stage (GPU clusters)."""
    rows = VLLMRows(recipe, prompts_root)
    processor = build_vllm_stage(
        recipe.generate,
        preprocess=rows.request,
        postprocess=lambda row: {k: row.get(k) for k in (*RESULT_COLUMNS, *VLLMRows.CARRIED)},
    )
    return processor(units).map_batches(rows.outcomes, batch_format="pyarrow")


def generate_and_filter(
    recipe: Recipe, units: ray.data.Dataset, prompts_root: Path, chain_path: Path
) -> ray.data.Dataset:
    """Unit rows -> Outcome rows with every pair's filter decisions."""
    if recipe.generate.engine == "vllm":
        outcomes = vllm_generate(recipe, units, prompts_root)
    else:
        outcomes = units.map_batches(
            GenerateActor,
            batch_size=recipe.generate.batch_size,
            batch_format="pyarrow",
            compute=ActorPoolStrategy(size=recipe.generate.workers),
            fn_constructor_kwargs={
                "generate": recipe.generate,
                "units": recipe.units,
                "prompts_root": str(prompts_root.resolve()),
            },
            **stage_asks(recipe)["generate"].ray_args(),
        )
    return outcomes.map_batches(
        filter_batch,
        batch_format="pyarrow",
        fn_kwargs={"chain_path": str(chain_path), "cache": recipe.generate.cache},
        **stage_asks(recipe)["filter"].ray_args(),
    )


def run_identity(recipe: Recipe, chain_path: Path, prompt_dir: Path) -> str:
    """What an interrupted run must share with its resumption: the recipe's settings and the
    bytes of the filter chain and of the prompt templates (the generation set and any judge's),
    so that editing a prompt or a filter and rerunning starts over instead of mixing outcomes."""
    folders = [prompt_dir]
    spec = yaml.safe_load(chain_path.read_text()) or {}
    for entry in spec.get("filters", []):
        if entry.get("type") == "judge":
            folders.append(resolve_prompt_folder(entry.get("prompts", "prompts/judge")))
    parts: list[object] = [recipe.content_hash(), chain_path.read_bytes()]
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                parts += [path.relative_to(folder).as_posix(), path.read_bytes()]
    return content_id(*parts, length=64)


# Ray Data operator names -> the stages the progress line and the watchdog's reports name.
STAGE_NAMES = {
    "ingest_batch": "ingest",
    "ocr_batch": "ocr",
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
) -> None:
    """Stream the graph's Outcome rows for `todo` into the journal, under the watchdog: a stall
    is reported through `on_wait` and names the waiting stage in the progress, or (run.on_stall:
    fail) ends the run with RunBlocked, the journal kept for a rerun."""

    def report(stage: str | None, message: str | None) -> None:
        journal.progress.waiting = stage
        if message and on_wait:
            on_wait(message)
        if on_progress:
            on_progress(journal.progress)

    watchdog = Watchdog(recipe.run, STAGE_NAMES, report)
    try:
        with watchdog.watching():
            units = build_units(recipe, todo, frozenset(journal.units_done()))
            dataset = generate_and_filter(recipe, units, prompts_root, chain_path)
            # No prefetch: Ray's prefetching iterator holds a finished block back until the
            # next one arrives, so a run stopped behind a hung stage would lose it.
            batches = dataset.iter_batches(
                batch_format="pyarrow", batch_size=None, prefetch_batches=0
            )
            for batch in batches:
                journal.append(batch)
                if on_progress:
                    on_progress(journal.progress)
    except Exception as exc:
        if watchdog.blocked:  # raised in Ray's executor thread, and re-raised here by Ray
            raise watchdog.blocked from exc
        raise


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
    try:
        files = expand_inputs(recipe.inputs)
    except ValueError as exc:  # a URI whose filesystem driver is missing or that is malformed
        raise ConfigError(f"inputs: {exc}") from exc
    if not files:
        raise ConfigError(f"inputs: no file matches {recipe.inputs}")
    files = files[:limit] if limit else files
    chain_path = Path(recipe.filters).resolve()
    chain, dedup = load_chain(str(chain_path))  # fail on a bad chain or prompt set before Ray
    QAGenerator(recipe.generate, recipe.units, prompts_root)  # checks the prompt set; no model
    prompt_dir = resolve_prompt_dir(recipe.generate.prompt_set, prompts_root)

    if restart:
        shutil.rmtree(out_dir / JOURNAL, ignore_errors=True)
    paths = {str(path): path for path in files}
    journal = Journal(
        out_dir,
        run_identity(recipe, chain_path, prompt_dir),
        list(paths),
        lambda source: current_document_id(paths[source], recipe.ingest.max_file_mb),
    )
    if on_progress:
        on_progress(journal.progress)
    finished = journal.documents_done()
    todo = [path for path in files if str(path) not in finished]
    if todo:
        init_ray(address)
        for warning in preflight(recipe):  # RunBlocked if a stage fits no node
            if on_wait:
                on_wait(warning)
        run_graph(recipe, todo, journal, prompts_root, chain_path, on_progress, on_wait)

    seen: Deduplicator | KnownVerdicts | None = None
    if dedup and dedup.in_ray(journal.progress.pairs_kept):
        init_ray(address)
        seen = ray_dedup_verdicts(journal, dedup, out_dir / DEDUP_STAGING)
    elif dedup:
        seen = dedup.deduplicator()
    writer = DatasetWriter(
        out_dir, recipe.output.rows_per_shard, [str(p) for p in files], recipe.output.shard_mb
    )
    for outcome in journal.outcomes():
        writer.add(dedup_outcome(outcome, dedup, seen) if dedup and seen else outcome)
    manifest = writer.close(
        {
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
    )
    journal.remove()
    write_card(out_dir)
    return manifest
