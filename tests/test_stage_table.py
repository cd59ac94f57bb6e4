"""The stage table (`pipeline.stages`) declares each stage once: the watchdog's names for Ray
Data's operators and preflight's asks are read from it, so renaming a stage or changing its
function moves both; a chain whose judge or verifier loads a model in-process gets a filter
stage of actors holding it, one that calls no model runs inside the generation actors, which
leave the page images in Arrow. No Ray here (the table is plain data until the graph is built), but
for the last test: a long document leaves its ingest task in blocks of a bounded size."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from output_fixtures import document_units, outcome
from scripted_server import message_text, scripted_server

from curation.config import GenerateConfig, IngestConfig, Recipe, RunConfig, UnitsConfig
from curation.pipeline import (
    FilterActor,
    GenerateActor,
    GraphContext,
    filter_batch,
    ingest_batch,
    stage_asks,
    stage_names,
    stages,
)
from curation.preflight import GIB, NodeRoom, RunBlocked, check_plan
from curation.schema import OUTCOME_SCHEMA
from curation.watchdog import Watchdog
from curation.workers import rows_of, with_images

ROOT = Path(__file__).resolve().parents[1]
LOCAL = {"engine": "local", "model": "bundled"}


def recipe(folder: Path | None = None, filters: list[dict] | None = None) -> Recipe:
    """The default recipe, or one whose chain file (a new one in `folder`: chains are cached
    by path) holds `filters`."""
    if filters is None:
        return Recipe(name="r", inputs=["x"])
    chain = folder / f"chain-{len(list(folder.glob('chain-*')))}.yaml"
    chain.write_text(yaml.safe_dump({"name": "c", "filters": filters}))
    return Recipe(name="r", inputs=["x"], filters=str(chain))


SERVED_JUDGE = {
    "type": "judge",
    "engine": {"engine": "openai", "model": "m", "base_url": "http://x"},
}


def test_the_watchdog_names_and_preflight_asks_are_the_tables(tmp_path: Path) -> None:
    table = stages(recipe(tmp_path, [{"type": "non_empty"}, SERVED_JUDGE]))
    assert [stage.name for stage in table] == ["ingest", "ocr", "generate", "filter"]
    assert stage_names(table) == {
        "ingest_batch": "ingest",
        "OCRActor": "ocr",
        "GenerateActor": "generate",
        "filter_batch": "filter",
    }
    assert {name: ask.resources for name, ask in stage_asks(table).items()} == {
        "ingest": {"CPU": 1.0},
        "ocr": {"CPU": 0.0, "memory": 2 * GIB},
        "generate": {"CPU": 0.0, "memory": 4 * GIB},
        "filter": {"CPU": 1.0},
    }


def test_a_chain_that_calls_no_model_filters_inside_the_generation_actors(tmp_path) -> None:
    """No filter stage of its own (see pair_stages): the generation actors get the chain, so
    nothing waits for a CPU between generation and the journal; the table says so."""
    table = stages(recipe())  # the default chain: its judge has no engine, so is inactive
    assert [stage.name for stage in table] == ["ingest", "ocr", "generate"]
    assert stage_names(table) == {
        "ingest_batch": "ingest",
        "OCRActor": "ocr",
        "GenerateActor": "generate",
    }
    generate = table[-1]
    assert (generate.kind, generate.run, dict(generate.resources)) == (
        "actor",
        GenerateActor,
        {"CPU": 0.0, "memory": 4 * GIB},
    )
    kwargs = generate.kwargs(GraphContext())
    assert kwargs["chain_path"] == str(ROOT / "filters" / "default.yaml")
    assert {"generate", "units", "cache"} <= kwargs.keys()
    # vLLM's own stage (Ray Data LLM) is no actor of ours: the chain keeps its task there.
    on_vllm = Recipe(name="r", inputs=["x"], generate={"engine": "vllm", "model": "m"})
    assert [stage.name for stage in stages(on_vllm)][-2:] == ["generate", "filter"]


def grounded_and_echoed(messages: list[dict]) -> str:
    """A reply of two pairs: a sentence of the prompt's page as an answer (kept), and the
    question said again with one word changed (the chain's answer_echo drops it)."""
    text = message_text(messages).split("--- Page ", 1)[-1]
    sentence = next(line for line in text.splitlines()[1:] if len(line.split()) >= 6)
    return (
        f"Q1: What does the report say first?\nA1: {sentence}\n"
        "Q2: What is the capacity of the new reservoir?\n"
        "A2: What is the capacity of the old reservoir?"
    )


def test_the_generation_actor_decides_as_the_filter_task_does(report_pdf, tmp_path) -> None:
    """The chain inside the generation actor (pair_stages) leaves each pair the decisions the
    filter task gives the same outcomes, and the rows go out with the batch's own page images
    (not copied into Python and back)."""
    units = pa.concat_tables(
        ingest_batch(
            pa.table({"path": [str(report_pdf)], "source": [str(report_pdf)], "page_dups": [None]}),
            IngestConfig(ocr="never"),
            UnitsConfig(),
        )
    )
    chain = str(ROOT / "filters" / "default.yaml")
    with scripted_server(grounded_and_echoed) as server:
        cfg = GenerateConfig(
            engine="openai", model=server.model_id, base_url=server.base_url, cache=False
        )
        fused = GenerateActor(cfg, UnitsConfig(), chain_path=chain, cache=False)(units)
        generated = GenerateActor(cfg, UnitsConfig())(units)
    assert fused.to_pylist() == filter_batch(generated, chain, cache=False).to_pylist()
    decisions = [
        [d["passed"] for d in pair["decisions"]]
        for row in fused.to_pylist()
        for pair in row["pairs"]
    ]
    assert len(decisions) == 2 * units.num_rows and all(decisions)
    assert [all(d) for d in decisions] == [True, False] * units.num_rows
    came, went = (t.column("images").chunk(0).values.buffers()[-1] for t in (units, fused))
    assert went.address == came.address


def test_a_row_s_images_stay_in_arrow_until_a_stage_reads_them() -> None:
    """rows_of: each row's `images` reads the batch's column (a VLM's prompt, a judge, image
    decontamination read them as a list of bytes); with_images puts the column back as it was,
    and refuses rows that are not the batch's, in its order."""
    pages = [[b"page-1", b"page-2"], None, [b"only"]]
    batch = pa.table({"unit_id": ["a", "b", "c"], "images": pa.array(pages, pa.list_(pa.binary()))})
    rows = rows_of(batch)
    assert [list(row["images"]) for row in rows] == [[b"page-1", b"page-2"], [], [b"only"]]
    first = rows[0]["images"]
    assert (len(first), first[-1], first[1:], bool(rows[1]["images"])) == (
        2,
        b"page-2",
        [b"page-2"],
        False,
    )
    with pytest.raises(IndexError):
        first[2]
    schema = pa.schema([pa.field("unit_id", pa.string()), pa.field("images", batch.schema[1].type)])
    assert with_images(rows, batch, schema).equals(batch)
    with pytest.raises(RuntimeError, match="other units"):
        with_images(rows[::-1], batch, schema)


def test_a_stage_renamed_in_the_table_is_renamed_in_the_watchdog_and_preflight(
    tmp_path: Path,
) -> None:
    table = [
        dataclasses.replace(stage, name="write pairs") if stage.name == "generate" else stage
        for stage in stages(recipe(tmp_path, [SERVED_JUDGE]))
    ]
    dog = Watchdog(RunConfig(), stage_names(table), lambda *report: None)
    assert dog.stage("MapWorker(MapBatches(GenerateActor))") == "write pairs"
    assert dog.stage("MapBatches(filter_batch)") == "filter"
    small = {"CPU": 2.0, "memory": 3.0 * GIB}  # room for OCR, not generation
    with pytest.raises(RunBlocked) as refused:
        check_plan(stage_asks(table), [NodeRoom("10.0.0.1", small, small)], {})
    assert str(refused.value).startswith("stage write pairs asks 0 CPU, 4.0 GiB memory")
    assert "change generate.memory_gb" in str(refused.value)
    # Another function for a stage: the watchdog knows its operator by that function's name.
    table[-1] = dataclasses.replace(table[-1], run=FilterActor, kind="actor")
    assert stage_names(table)["FilterActor"] == "filter" and "filter_batch" not in stage_names(
        table
    )


def test_a_chain_whose_judge_or_verifier_runs_a_local_model_filters_in_actors_holding_it(
    tmp_path: Path,
) -> None:
    judge = {"type": "judge", "engine": {**LOCAL, "memory_gb": 3, "workers": 2}}
    [filter_stage] = stages(recipe(tmp_path, [{"type": "non_empty"}, judge]))[-1:]
    assert (filter_stage.kind, filter_stage.run, filter_stage.concurrency) == (
        "actor",
        FilterActor,
        2,
    )
    assert filter_stage.ask.ray_args() == {"num_cpus": 0.0, "memory": 3 * GIB}
    assert "judge or verifier" in filter_stage.setting and str(tmp_path) in filter_stage.setting
    assert filter_stage.cores_unasked  # its model computes on the node's cores: see build_graph
    # A verifier on the local engine too: one actor holds both models.
    verifier = {"type": "grounding", "unsettled": "verify", "engine": {**LOCAL, "memory_gb": 2}}
    both = stages(recipe(tmp_path, [judge, verifier]))[-1]
    assert both.kind == "actor" and both.resources["memory"] == 5 * GIB
    # A judge behind a server loads no model: the filter stays a task asking a CPU, so its
    # requests overlap generation's.
    task = stages(recipe(tmp_path, [SERVED_JUDGE]))[-1]
    assert (task.kind, task.run, task.resources) == ("task", filter_batch, {"CPU": 1.0})
    assert not task.cores_unasked


def test_only_a_model_on_the_node_s_own_cores_keeps_ray_data_s_reservation() -> None:
    """build_graph turns Ray Data's per-operator reservation on only when a stage's model
    computes on the node's cores without asking Ray for them (the local engine): it keeps
    ingest to its share beside the model; otherwise every free CPU takes the next task."""
    local = stages(recipe())  # the default recipe: the bundled model on the local engine
    assert [s.name for s in local if s.cores_unasked] == ["generate"]
    served = Recipe(
        name="r", inputs=["x"], generate={"engine": "openai", "model": "m", "base_url": "http://x"}
    )
    assert not any(s.cores_unasked for s in stages(served))


def test_a_generation_actor_is_handed_one_batch_at_a_time() -> None:
    """Ray runs the batches an actor holds out of order when it can; with one at a time, a
    batch whose request hangs holds back only the rows after it (test_watchdog.py's hung-server
    run). What `Stage.apply` asks of Ray Data, recorded by a stand-in for the dataset."""

    class Recorded:
        def map_batches(self, run, **args):
            self.args = args
            return self

    served = Recipe(
        name="r", inputs=["x"], generate={"engine": "openai", "model": "m", "base_url": "http://x"}
    )
    for recipe_ in (recipe(), served):
        generate = next(s for s in stages(recipe_) if s.name == "generate")
        compute = generate.apply(Recorded(), GraphContext()).args["compute"]
        assert compute.max_tasks_in_flight_per_actor == 1
    ocr = next(s for s in stages(recipe()) if s.name == "ocr")
    assert (
        ocr.apply(Recorded(), GraphContext()).args["compute"].max_tasks_in_flight_per_actor is None
    )


def test_the_filter_actor_decides_as_the_filter_task_does() -> None:
    (unit,) = document_units("aaaa1111", "docs/report.pdf", n_pages=2, pages_per_unit=2)
    made = outcome(unit, [("What grew [2]?", "The budget grew [page 2].", True), ("", "", True)])
    row = made.to_row()
    batch = pa.Table.from_pylist([row], schema=OUTCOME_SCHEMA)
    chain = str(ROOT / "filters" / "default.yaml")
    by_actor = FilterActor(chain)(batch).to_pylist()
    assert by_actor == filter_batch(batch, chain).to_pylist()
    decisions = [pair["decisions"] for pair in by_actor[0]["pairs"]]
    assert all(decisions) and not decisions[1][-1]["passed"]  # the empty pair rejected


@pytest.mark.e2e
def test_a_long_document_leaves_ingest_in_blocks_as_its_units_are_made(
    ray_local, tmp_path: Path
) -> None:
    """Ray Data cuts a task's output at `target_max_block_size`, which `init_ray` sets; the ingest
    task yields unit by unit, so a document larger than a block reaches the next stage in
    several blocks, in page order (its units are not held back until the last page is read).
    The block size is lowered for the test so that 12 small pages exceed it."""
    import ray
    from conftest import make_pdf
    from ray.data import DataContext

    from curation.pipeline import build_units
    from curation.runtime import BLOCK_BYTES

    context = DataContext.get_current()
    assert context.target_max_block_size == BLOCK_BYTES  # what init_ray set
    pdf = make_pdf(tmp_path / "long.pdf", [f"Section {n} of the manual." for n in range(1, 13)])
    spec = Recipe(
        name="r", inputs=[str(pdf)], ingest={"dpi": 72, "ocr": "never"}, units={"pages_per_unit": 1}
    )
    context.target_max_block_size = 16 * 1024  # three or four of these pages (5 KB each)
    try:
        bundles = list(build_units(spec, [pdf]).iter_internal_ref_bundles())
    finally:
        context.target_max_block_size = BLOCK_BYTES
    assert not context.op_resource_reservation_enabled  # no model here: see build_graph
    pages = [
        unit_pages
        for bundle in bundles
        for block in bundle.block_refs
        for unit_pages in ray.get(block).column("pages").to_pylist()
    ]
    assert len(bundles) > 1, [(b.num_rows(), b.size_bytes()) for b in bundles]
    assert [unit[0] for unit in pages] == sorted(unit[0] for unit in pages)  # page order
    assert len(pages) == 12 and all(len(unit) == 1 for unit in pages)
