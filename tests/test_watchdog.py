"""The watchdog's decisions, step by step, on a fake clock: which limit applies (a stage's first
block, or a stall after it), which stage it names, how often it reports, when it ends the run.

The executor is a stand-in for Ray Data's StreamingExecutor holding only what `Watchdog.step`
reads (each operator's name, counters and work in hand). The last test runs the watchdog on a
real Ray Data execution, in a real run whose LLM server hangs."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import LENIENT_CHAIN, curation_cli, make_pdf
from scripted_server import message_text, scripted_server
from test_journal import chunk_rows

from curation import pipeline
from curation import watchdog as watchdog_module
from curation.config import Recipe, RunConfig
from curation.files import largest_first
from curation.pipeline import stage_names, stages
from curation.preflight import RunBlocked
from curation.watchdog import Watchdog


@dataclass(eq=False)
class Operator:
    """A stand-in for a Ray Data physical operator: what the watchdog reads of one."""

    name: str
    produced: int = 0  # blocks its tasks produced
    taken: int = 0  # blocks taken from it downstream
    active: int = 0  # tasks running now
    queued: int = 0  # input blocks waiting
    completed: bool = False

    @property
    def metrics(self) -> SimpleNamespace:
        return SimpleNamespace(
            num_task_outputs_generated=self.produced, num_outputs_taken=self.taken
        )

    def has_completed(self) -> bool:
        return self.completed

    def num_active_tasks(self) -> int:
        return self.active


class OperatorState:
    def __init__(self, op: Operator) -> None:
        self.op = op

    def total_enqueued_input_blocks(self) -> int:
        return self.op.queued

    def total_enqueued_output_blocks(self) -> int:
        return 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Graph:
    """The stages of a run on the default chain (it calls no model, so its filters run in the
    generation actors), named as Ray Data names its operators."""

    def __init__(self) -> None:
        self.ingest = Operator("MapBatches(ingest_batch)")
        self.generate = Operator("MapWorker(MapBatches(GenerateActor))")
        ops = [self.ingest, self.generate]
        self.executor = SimpleNamespace(_topology={op: OperatorState(op) for op in ops})


@pytest.fixture
def no_cluster(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What Ray cannot place, as the GCS would say it: the test sets it (no Ray here)."""
    demands: list[str] = []
    monkeypatch.setattr(watchdog_module, "cluster_status", lambda wait_s: None)
    monkeypatch.setattr(watchdog_module, "pending_demands", lambda status: list(demands))
    return demands


def watch(
    on_stall: str = "report", generate: dict | None = None
) -> tuple[Watchdog, Graph, Clock, list]:
    """A watchdog with the names of a recipe's stage table (the default recipe's: OCR on, the
    local engine; `generate`: another generate section)."""
    clock, reports = Clock(), []
    settings = RunConfig(startup_timeout_s=600, stall_timeout_s=300, on_stall=on_stall)
    names = stage_names(stages(Recipe(name="r", inputs=["x"], generate=generate or {})))
    dog = Watchdog(settings, names, lambda *r: reports.append(r), clock=clock)
    dog.start()
    return dog, Graph(), clock, reports


def test_a_stage_before_its_first_block_gets_the_startup_limit(no_cluster) -> None:
    dog, graph, clock, reports = watch()
    graph.ingest.completed, graph.ingest.produced, graph.ingest.taken = True, 2, 2
    graph.generate.active, graph.generate.queued = 1, 1  # the model loads
    dog.step(graph.executor)
    clock.now += 599  # past the stall limit, not the start-up one
    dog.step(graph.executor)
    assert reports == []
    clock.now += 1
    dog.step(graph.executor)
    ((stage, message),) = reports
    assert stage == "generate"
    assert message.startswith("no block finished in any stage for 600 s (run.startup_timeout_s)")
    assert "waiting for stage generate." in message
    assert "nothing waits for resources" in message  # its actor runs, and finishes nothing


def test_after_the_first_block_a_stall_is_reported_every_limit_until_blocks_move(
    no_cluster,
) -> None:
    dog, graph, clock, reports = watch()
    graph.ingest.active = 1
    graph.generate.produced, graph.generate.active = 1, 1
    dog.step(graph.executor)
    clock.now += 299
    dog.step(graph.executor)
    assert reports == []
    clock.now += 1
    dog.step(graph.executor)
    assert [stage for stage, _ in reports] == ["generate"]  # the most downstream stage at work
    assert "for 300 s (run.stall_timeout_s)" in reports[0][1]
    clock.now += 150
    dog.step(graph.executor)  # still stalled: no second report within the limit
    assert len(reports) == 1
    clock.now += 150
    no_cluster.append("1 CPU x 2")
    dog.step(graph.executor)
    assert len(reports) == 2 and "for 600 s" in reports[1][1]
    assert "Ray cannot place: 1 CPU x 2" in reports[1][1]

    graph.generate.produced += 1  # a block moves: the stall is over, said once
    dog.step(graph.executor)
    dog.step(graph.executor)
    assert reports[2:] == [(None, None)]
    clock.now += 299
    dog.step(graph.executor)
    assert len(reports) == 3  # the idle time counts from the move


def test_any_counter_that_moves_resets_the_idle_time(no_cluster) -> None:
    dog, graph, clock, reports = watch()
    graph.generate.produced, graph.generate.active = 1, 1
    dog.step(graph.executor)
    for change in ("produced", "taken", "queued"):
        clock.now += 299
        setattr(graph.ingest, change, getattr(graph.ingest, change) + 1)
        dog.step(graph.executor)
    assert reports == []


def test_a_graph_with_no_work_in_hand_is_not_stalled(no_cluster) -> None:
    dog, graph, clock, reports = watch()
    for op in (graph.ingest, graph.generate):
        op.produced = op.taken = 3
    graph.generate.completed = True  # the rest idle: nothing running, nothing queued
    dog.step(graph.executor)
    clock.now += 10_000
    dog.step(graph.executor)
    assert reports == []


def test_on_stall_fail_ends_the_run_with_the_reason(no_cluster) -> None:
    dog, graph, clock, reports = watch(on_stall="fail")
    graph.ingest.queued, graph.ingest.active = 4, 1  # the first document never comes back
    dog.step(graph.executor)
    clock.now += 600
    with pytest.raises(RunBlocked, match="waiting for stage ingest"):
        dog.step(graph.executor)
    assert dog.blocked is not None and "run.startup_timeout_s" in str(dog.blocked)
    assert reports == []  # the run ends instead of reporting


def test_a_cluster_status_that_cannot_be_read_does_not_end_the_run(monkeypatch) -> None:
    def unreadable(wait_s: float):
        raise ConnectionError("GCS gone")

    monkeypatch.setattr(watchdog_module, "cluster_status", unreadable)
    dog, graph, clock, reports = watch()
    graph.generate.active = 1
    dog.step(graph.executor)
    clock.now += 600
    dog.step(graph.executor)
    ((stage, message),) = reports
    assert stage == "generate"
    assert "unknown (the cluster status could not be read: GCS gone)" in message


def test_stage_names_follow_ray_datas_operator_names() -> None:
    dog, *_ = watch()
    assert dog.stage("MapWorker(MapBatches(GenerateActor))") == "generate"
    assert dog.stage("MapWorker(MapBatches(OCRActor))") == "ocr"
    assert (
        dog.stage("MapBatches(ReadItems)->MapBatches(ingest_batch)") == "ingest"
    )  # fused with the read
    vllm, *_ = watch(generate={"engine": "vllm", "model": "m/7b", "vllm_device": "gpu"})
    assert vllm.stage("vLLMEngineStage") == "generate"
    assert dog.stage("ReadRange") == "ReadRange"  # not ours: its own name


class HangOn:
    """The script of a scripted server (scripted_server.py, a FAKE: a real server cannot be
    made to hang on demand): it answers every request at once, except those whose prompt holds
    `words`, which it holds open until `release()` and then drops unanswered (so no reply to
    them reaches the cache). `held` counts the requests held."""

    REPLY = "Q1: What does the page record?\nA1: The figures on the page."

    def __init__(self, words: str) -> None:
        self.words = words
        self.held = 0
        self.released = threading.Event()

    def __call__(self, messages: list[dict]) -> str | None:
        if self.words not in message_text(messages):
            return self.REPLY
        self.held += 1
        self.released.wait()
        return None

    def release(self) -> None:
        self.released.set()


class StallClock:
    """The watchdog's clock: real time until `stalled()` holds, then far later at every reading,
    so the stall is seen at the watchdog's next step, however slow the machine is."""

    def __init__(self, stalled) -> None:
        self.stalled = stalled
        self.skipped = 0.0

    def __call__(self) -> float:
        if self.stalled():
            self.skipped += 10_000
        return time.monotonic() + self.skipped


RECIPE = {
    "name": "hung",
    "ingest": {"dpi": 72, "ocr": "never"},
    "units": {"pages_per_unit": 1},
    "generate": {"pairs_per_unit": 1, "max_tokens": 16, "batch_size": 1, "seed": 5},
    "run": {"stall_timeout_s": 120, "on_stall": "fail"},
}


@pytest.mark.e2e
def test_a_generation_stage_that_stops_answering_ends_the_run_and_the_rerun_resumes(
    ray_local, serve_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real run (Ray Data, the watchdog on its executor, `curation run` in this process) whose
    LLM server hangs: the run ends with exit 3 naming the generate stage, what it finished is
    journaled, and a rerun against a server that answers resumes and completes."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    council = ["The council met on 4 March.", "The vote was postponed.", "Minutes signed."]
    make_pdf(inputs / "council.pdf", council)
    make_pdf(inputs / "lighthouse.pdf", ["Built in 1871 from granite.", "Kept for 31 years."])
    # A broken file: its error row needs no request. Its bytes make it the largest input.
    (inputs / "a-broken.pdf").write_bytes(b"%PDF-1.7 truncated" + b" " * 100_000)
    # The server hangs on the last document in run order only, the smallest (the graph takes
    # the largest first): Ray Data keeps the rows' order (preserve_order), so a hung unit holds
    # back every row after it, and the actor runs its batches one at a time, so what it takes
    # after a hung batch waits too. What comes before (the broken file's row, the council's
    # three pages to the lighthouse's two) is answered and journaled.
    assert [p.name for p in largest_first(sorted(inputs.iterdir()))] == [
        "a-broken.pdf",
        "council.pdf",
        "lighthouse.pdf",
    ]
    script = HangOn("Built in 1871")
    (tmp_path / "lenient.yaml").write_text(LENIENT_CHAIN)
    out, journal = tmp_path / "out", tmp_path / "out" / ".journal"
    spec = {
        **RECIPE,
        "inputs": [f"{inputs}/*.pdf"],
        "filters": str(tmp_path / "lenient.yaml"),
        "output": {"dir": str(out), "rows_per_shard": 1},
    }
    spec["generate"] = {
        **RECIPE["generate"],
        "engine": "openai",
        "model": serve_server.model_id,
        "base_url": None,  # the scripted server's, below
        "timeout_s": 3600,
        "max_retries": 0,
        "cache_dir": str(tmp_path / "cache"),
    }
    recipe = tmp_path / "hung.yaml"
    started: list[float] = []

    def journaled() -> set[str]:
        """The file names of the sources the journal holds rows of."""
        return {Path(row["source"]).name for row in chunk_rows(journal, ["source"])}

    def stalled() -> bool:
        """A request hangs after the rows before it were journaled (or five minutes after the
        hanging request came, so that a run that journaled nothing fails below; a loaded
        machine can take a minute to journal a row)."""
        if not script.held:
            return False
        started[:] = started or [time.monotonic()]
        before = {"a-broken.pdf", "council.pdf"}
        return journaled() >= before or time.monotonic() - started[0] > 300

    clock = StallClock(stalled)
    monkeypatch.setattr(pipeline, "Watchdog", functools.partial(Watchdog, clock=clock))
    with scripted_server(script, model_id=serve_server.model_id) as hung:
        spec["generate"]["base_url"] = hung.base_url
        recipe.write_text(yaml.safe_dump(spec))
        try:
            result = curation_cli("run", str(recipe))
        finally:
            script.release()
    assert result.exit_code == 3, result.output[-3000:]
    said = " ".join(result.output.split())
    assert "cannot make progress" in said and "waiting for stage generate" in said
    assert "(run.stall_timeout_s)" in said  # rows had got through first
    assert journaled() == {"a-broken.pdf", "council.pdf"}  # what came before the hung units

    monkeypatch.undo()
    spec["generate"]["base_url"] = serve_server.base_url  # the same model, answering now
    spec["run"] = {**RECIPE["run"], "on_stall": "report"}
    recipe.write_text(yaml.safe_dump(spec))
    answered = serve_server.requests_seen()
    result = curation_cli("run", str(recipe))
    assert result.exit_code == 0, result.output[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["resumed"]
    assert Counter(record["status"] for record in manifest["inputs"]) == {"error": 1, "ok": 2}
    assert manifest["counts"]["units"] == 5
    # the lighthouse's units, never answered, were asked of the answering server
    assert serve_server.requests_seen() - answered >= 2
