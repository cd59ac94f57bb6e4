"""The Ray Data graph: files -> Unit rows -> Outcome rows (pairs with their filter decisions),
streamed into the run's journal. The stage table (`stages`) declares each stage once: its
function or actor class, resources, batch size and concurrency; the graph, preflight's asks
(`stage_asks`) and the watchdog's names for Ray Data's operators (`stage_names`) are read from
it. Every stage's work is a function or class of `curation.workers`, which imports the
stage's own package only when it runs. Ray start-up is
`curation.runtime`; the run around the graph (inputs, journal, assembly into shards) is
`curation.run`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import ray
from ray.data import ActorPoolStrategy, DataContext

from curation.config import GenerateConfig, Recipe
from curation.files import largest_first, path_text
from curation.filters.chain import load_chain
from curation.generate.engines.vllm import VLLMRows, build_vllm_stage, output_columns
from curation.generate.prompts import resolve_prompt_dir
from curation.ingest.pagedup import dups_to_json, find_duplicates, signatures_of
from curation.output.journal import Journal, Progress
from curation.preflight import GIB, StageAsk, vllm_on_cpu
from curation.watchdog import Watchdog
from curation.workers import FilterActor, GenerateActor, OCRActor, filter_batch, ingest_batch


@dataclass(frozen=True)
class GraphContext:
    """What the stages take from the run besides the recipe."""

    prompts_root: Path = Path("prompts")
    skip: frozenset[str] = frozenset()  # units finished before an interruption


# A task ends, so it may hold a CPU; an actor holding a model asks for no CPU (see `stages`).
NODE_CPUS = "the node's CPUs (ray start --num-cpus)"
# The OCR model (RapidOCR peaks near 1.4 GiB) loads inside its actor, on the first page it OCRs.
OCR_MEMORY = 2 * GIB
# Ray Data LLM's processor names its operators itself (vLLMEngineStage, ...).
VLLM_OPERATOR = "vLLM"


@dataclass(frozen=True)
class Stage:
    """One stage of the graph, declared once. `run` is a task's function or an actor's class,
    called with `kwargs(context)` (the function's, or the constructor's, keyword arguments);
    the ray-data-llm stage's `run` applies Ray Data LLM's processor to the dataset itself."""

    name: str  # ours: the progress line's, the watchdog's and preflight's name for it
    kind: Literal["task", "actor", "ray-data-llm"]
    run: Callable[..., Any]
    kwargs: Callable[[GraphContext], dict[str, Any]]
    resources: Mapping[str, float]  # per task or actor, Ray's names: CPU, GPU, memory (bytes)
    setting: str  # what to change when no node has room for `resources`
    batch_size: int | None = None  # rows per call; None: Ray Data's default
    concurrency: int = 1  # an actor stage's actors
    in_flight: int | None = None  # batches an actor holds at a time; None: Ray Data's default
    cores_unasked: bool = False  # its model computes on the node's cores without asking for them

    @property
    def ask(self) -> StageAsk:
        return StageAsk(self.name, dict(self.resources), self.setting)

    @property
    def operator(self) -> str:
        """What Ray Data's name for this stage's operator holds (MapBatches(ingest_batch),
        MapWorker(MapBatches(OCRActor)), vLLMEngineStage)."""
        return VLLM_OPERATOR if self.kind == "ray-data-llm" else self.run.__name__

    def apply(self, data: ray.data.Dataset, context: GraphContext) -> ray.data.Dataset:
        """`data` through this stage."""
        kwargs = self.kwargs(context)
        if self.kind == "ray-data-llm":
            return self.run(data, **kwargs)
        args: dict[str, Any] = {"batch_format": "pyarrow", **self.ask.ray_args()}
        if self.batch_size is not None:
            args["batch_size"] = self.batch_size
        if self.kind == "actor":
            args["compute"] = ActorPoolStrategy(
                size=self.concurrency, max_tasks_in_flight_per_actor=self.in_flight
            )
            args["fn_constructor_kwargs"] = kwargs
        else:
            args["fn_kwargs"] = kwargs
        return data.map_batches(self.run, **args)


def stages(recipe: Recipe) -> list[Stage]:
    """The run's stages in graph order. Only tasks ask for a CPU: they end, so they never hold
    a node. The actors holding a model (OCR, generation, a judge on the local engine) live as
    long as the run and ask for memory alone (their libraries spread over every core anyway);
    with a CPU share of their own they left a 1-CPU node unable to take any 1-CPU task, and the
    run waited forever."""
    return [*unit_stages(recipe), *pair_stages(recipe)]


def pair_stages(recipe: Recipe) -> list[Stage]:
    """Unit rows -> Outcome rows with their filter decisions: generation, then the filter
    stage. A chain that calls no model (no judge or verifier with an engine) runs inside the
    generation actors instead, with no stage of its own: as tasks asking a CPU, the pairs
    waited for one while the longest documents' ingest held every CPU (the first pairs of a
    10,000-page run were journaled after 92 s), and every batch crossed one more stage
    border. A chain that calls a model keeps its stage, so its requests overlap generation's."""
    generate, filters = generate_stage(recipe), filter_stage(recipe)
    # vLLM's generation is Ray Data LLM's stage, not our actor: its chain keeps a stage too.
    # A chain without a model's engine has only task filters (`filter_stage`), so it can move.
    if generate.kind != "actor" or chain_engines(recipe.chain_file()):
        return [generate, filters]
    return [
        dataclasses.replace(
            generate, kwargs=lambda context: {**generate.kwargs(context), **filters.kwargs(context)}
        )
    ]


def unit_stages(recipe: Recipe) -> list[Stage]:
    """Files -> Unit rows: one ingest task per document, then OCR actors for the pages that
    need it (none with ingest.ocr: never). Without page images for the model
    (generate.images off), a unit with no text is skipped."""
    ocr, needs_text = recipe.ingest.ocr != "never", not recipe.generate.images
    ingest = Stage(
        "ingest",
        "task",
        ingest_batch,
        lambda context: {
            "ingest": recipe.ingest,
            "units": recipe.units,
            "skip": context.skip,
            "to_ocr": ocr,
            "needs_text": needs_text,
        },
        {"CPU": 1.0},
        NODE_CPUS,
        batch_size=1,
    )
    if not ocr:
        return [ingest]
    # An actor's other ask also keeps Ray from fusing the ingest tasks into it, so documents
    # are read in parallel while the models work.
    return [
        ingest,
        Stage(
            "ocr",
            "actor",
            OCRActor,
            lambda context: {"ingest": recipe.ingest, "needs_text": needs_text},
            {"CPU": 0.0, "memory": OCR_MEMORY},
            "ingest.ocr (never: no OCR stage)",
            batch_size=4,
            concurrency=recipe.ingest.ocr_workers,
        ),
    ]


def generate_stage(recipe: Recipe) -> Stage:
    """Unit rows -> Outcome rows: generation actors, or Ray Data LLM's vLLM processor."""
    cfg = recipe.generate
    if cfg.engine != "vllm":
        return Stage(
            "generate",
            "actor",
            GenerateActor,
            lambda context: {
                "generate": workers_generate(recipe, context.prompts_root),
                "units": recipe.units,
            },
            {"CPU": 0.0, "memory": cfg.memory_gb * GIB},
            "generate.memory_gb",
            batch_size=cfg.batch_size,
            concurrency=cfg.workers,
            # One batch at a time, in row order: Ray lets an actor run the batches it holds out
            # of order, so a batch whose request hangs could start before earlier ones and hold
            # them back; then a stalled run journaled nothing before the hung unit.
            in_flight=1,
            cores_unasked=cfg.engine == "local",
        )
    on_cpu = vllm_on_cpu(cfg)
    # Each replica takes tensor_parallel_size x pipeline_parallel_size bundles of 1 GPU; on CPUs
    # one bundle of a CPU (the processor's placement group), held for the run, so a node needs
    # a second CPU for the ingest and filter tasks.
    ask = (
        ({"CPU": 1.0}, "generate.vllm_device (cpu: a CPU per vLLM replica)")
        if on_cpu
        else ({"GPU": 1.0}, "generate.workers, nodes with GPUs")
    )
    return Stage(
        "generate",
        "ray-data-llm",
        vllm_generate,
        lambda context: {"recipe": recipe, "prompts_root": context.prompts_root, "on_cpu": on_cpu},
        *ask,
    )


def filter_stage(recipe: Recipe) -> Stage:
    """Outcome rows -> Outcome rows with every pair's filter decisions: a task per batch, or,
    when the chain's judge or verifier loads a model in-process (`chain_models`), actors that
    hold it (the engine sections' workers, each reserving their memory_gb)."""
    chain = str(recipe.chain_file())
    models = chain_models(chain)
    kwargs = {"chain_path": chain, "cache": recipe.generate.cache}
    if not models:
        return Stage(
            "filter", "task", filter_batch, lambda context: kwargs, {"CPU": 1.0}, NODE_CPUS
        )
    return Stage(
        "filter",
        "actor",
        FilterActor,
        lambda context: kwargs,
        {"CPU": 0.0, "memory": sum(model.memory_gb for model in models) * GIB},
        f"memory_gb of the local engine's judge or verifier in {chain}",
        concurrency=max(model.workers for model in models),
        cores_unasked=True,
    )


def chain_models(chain_path: str) -> list[GenerateConfig]:
    """The engine sections of the chain's filters that load a model in-process (the local
    engine): a judge's, a verifier's."""
    return [config for config in chain_engines(chain_path) if config.engine == "local"]


def chain_engines(chain_path: str | Path) -> list[GenerateConfig]:
    """The engine sections of the chain's active filters: those that call a model (a judge, a
    verifier), on any engine."""
    configs = [getattr(flt, "engine", None) for flt in load_chain(str(chain_path)).filters]
    return [c for c in configs if isinstance(c, GenerateConfig)]


def stage_asks(table: list[Stage]) -> dict[str, StageAsk]:
    """What each stage of the table asks of the cluster, by name: the preflight's plan."""
    return {stage.name: stage.ask for stage in table}


def stage_names(table: list[Stage]) -> dict[str, str]:
    """Ray Data's operator names (the part that names our function or class) -> the stage
    names the progress line and the watchdog's reports give."""
    return {stage.operator: stage.name for stage in table}


def source(
    files: list[Path | str], page_dups: dict[str, dict[int, str]] | None
) -> ray.data.Dataset:
    """The graph's first rows: one per input file, in a block of its own, the largest first
    (`largest_first`). `page_dups`: by source, the pages that repeat an earlier page
    (`page_duplicates`)."""
    items = [
        {
            # Bytes: Arrow holds text as UTF-8 only, and a file name may be any bytes.
            "path": os.fsencode(input_path(path)),
            "source": path_text(path),
            "page_dups": dups_to_json((page_dups or {}).get(path_text(path), {})),
        }
        for path in largest_first(files)
    ]
    return ray.data.from_items(items, override_num_blocks=len(items))


def build_graph(
    table: list[Stage],
    files: list[Path | str],
    context: GraphContext,
    page_dups: dict[str, dict[int, str]] | None = None,
) -> ray.data.Dataset:
    """The files through the table's stages, in order. Ray Data's per-operator reservation (at
    least one task's CPUs for each operator) held ingest to one task on a 2-CPU node, beside a
    filter task that mostly idled: it is off, so every free CPU takes the next task, unless a
    model computes on the node's cores without asking for them (the local engine), whose
    share of the cores the reservation keeps from ingest."""
    DataContext.get_current().op_resource_reservation_enabled = any(
        stage.cores_unasked for stage in table
    )
    data = source(files, page_dups)
    for stage in table:
        data = stage.apply(data, context)
    return data


def build_units(
    recipe: Recipe,
    files: list[Path | str],
    skip: frozenset[str] = frozenset(),
    page_dups: dict[str, dict[int, str]] | None = None,
) -> ray.data.Dataset:
    """Files -> Unit rows: the graph up to generation (`unit_stages`)."""
    return build_graph(unit_stages(recipe), files, GraphContext(skip=skip), page_dups)


def input_path(path: Path | str) -> str:
    """An input as a task reads it: a URI as it is, a local path made absolute."""
    return path if isinstance(path, str) else str(path.resolve())


def page_duplicates(recipe: Recipe, files: list[Path | str]) -> dict[str, dict[int, str]]:
    """The page-dedup pre-pass over every input of the run, in input order: each document's
    page signatures in a Ray task of its own (cached on disk by content and settings), then
    the duplicates found in the driver. By source: {page: "doc_id:page" it repeats}."""
    cache_dir = str(signature_cache_dir(recipe).resolve())
    ingest = unit_stages(recipe)[0]  # its tasks' ask: the pre-pass reads the same documents
    sign = ray.remote(signatures_of).options(**ingest.ask.ray_args())
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


def vllm_generate(
    units: ray.data.Dataset, recipe: Recipe, prompts_root: Path, on_cpu: bool
) -> ray.data.Dataset:
    """Generation with vLLM's offline engine as Ray Data LLM's processor, on GPUs or CPUs
    (`vllm_on_cpu`)."""
    rows = vllm_rows(recipe, prompts_root)
    processor = build_vllm_stage(
        recipe.generate, preprocess=rows.request, postprocess=output_columns, on_cpu=on_cpu
    )
    return processor(units).map_batches(rows.outcomes, batch_format="pyarrow")


def run_graph(
    recipe: Recipe,
    table: list[Stage],
    todo: list[Path | str],
    journal: Journal,
    prompts_root: Path,
    on_progress: Callable[[Progress], None] | None,
    on_wait: Callable[[str], None] | None,
    page_dups: dict[str, dict[int, str]] | None = None,
) -> None:
    """Stream the graph's Outcome rows for `todo` into the journal, under the watchdog: a stall
    is reported through `on_wait` and names the waiting stage in the progress, or (run.on_stall:
    fail) ends the run with RunBlocked, the journal kept for a rerun. `table`: the recipe's
    `stages`, as preflight checked them; `page_dups`: see `source`."""

    def report(stage: str | None, message: str | None) -> None:
        journal.progress.waiting = stage
        if message and on_wait:
            on_wait(message)
        if on_progress:
            on_progress(journal.progress)

    watchdog = Watchdog(recipe.run, stage_names(table), report)
    try:
        with watchdog.watching():
            context = GraphContext(prompts_root, frozenset(journal.units_done()))
            dataset = build_graph(table, todo, context, page_dups)
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
