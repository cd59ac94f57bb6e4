"""Cluster benchmarks: the pipeline on a real Ray cluster of 1-CPU raylets started on this host.

Run: make bench-cluster   (or .venv/bin/python benchmarks/bench_cluster.py [--pages N]
     [--scaling-pages N] [--object-store-mb N])

Measures, on real PDFs (Debian's LaTeX documentation, cached in .cache/bench-pdfs as for
bench_ingest.py):
- pages/s and pairs/s with one node, then with two nodes (each `ray start --num-cpus 1`), on
  the same documents: the scaling ratio;
- a run over >= 10,000 pages on the two nodes: peak memory (PSS summed over the driver and
  every process of both nodes, sampled each second), object-store use and spilling.

Generation by the LLM would take hours here, so these runs replace it with a benchmark-only
stand-in, `ExtractiveEngine`: it answers each real prompt with one pair copied from the page
text, at no cost. Everything else is the product's path: `pipeline.build_units` (ingest
tasks), `QAGenerator` (prompts, reply parsing, Outcome rows) and `workers.filter_batch` with
the Docmatix rule chain. Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psutil
import pyarrow as pa
import pymupdf
import ray
from bench_ingest import PACKAGE, fetch_corpus, memory_of

from curation.config import GenerateConfig, Recipe, UnitsConfig
from curation.generate import QAGenerator
from curation.generate.engines.base import ChatRequest, Engine, EngineResult
from curation.pipeline import build_units
from curation.runtime import init_ray
from curation.schema import OUTCOME_SCHEMA
from curation.workers import filter_batch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from cluster_fixtures import LocalCluster  # noqa: E402

CHAIN = ROOT / "filters" / "docmatix.yaml"


class ExtractiveEngine(Engine):
    """Benchmark-only stand-in for the LLM: one pair per request, its answer the longest line of
    the prompt's page text. Instant, so the runs measure ingest, transfer and filtering."""

    model_name = "bench-extractive"

    def generate(self, requests: list[ChatRequest]) -> list[EngineResult]:
        results = []
        for request in requests:
            text = request.messages[-1]["content"]
            line = max(text.splitlines(), key=len, default="").strip()[:200]
            topic = " ".join(line.split()[:4])
            reply = f"{request.prefill} What does the text say about {topic}?\nA1: {line}"
            results.append(EngineResult(request.request_id, reply, "stop"))
        return results


def extractive_outcomes(batch: pa.Table, generate: GenerateConfig, units: UnitsConfig) -> pa.Table:
    """Ray stage: Unit rows -> Outcome rows, through QAGenerator with the stand-in engine."""
    generator = QAGenerator(generate, units, ROOT / "prompts", engine=ExtractiveEngine())
    return pa.Table.from_pylist(generator(batch.to_pylist()), schema=OUTCOME_SCHEMA)


@dataclass
class RunFigures:
    pages: int = 0
    units: int = 0
    pairs: int = 0
    pairs_kept: int = 0
    seconds: float = 0.0

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.seconds

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / self.seconds


@cache
def page_count(path: Path) -> int:
    with pymupdf.open(path) as doc:
        return doc.page_count


def stream_of(corpus: list[Path], target_pages: int) -> tuple[list[Path], int]:
    """Corpus files in order, repeated if needed, until they hold target_pages pages."""
    stream, total = [], 0
    while total < target_pages:
        for path in corpus:
            stream.append(path)
            total += page_count(path)
            if total >= target_pages:
                break
    return stream, total


def run_stream(address: str, recipe: Recipe, files: list[Path]) -> RunFigures:
    """The ingest + rule-filter path over `files` on the cluster; the driver only counts."""
    ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    init_ray()
    figures = RunFigures()
    start = time.perf_counter()
    outcomes = build_units(recipe, files).map_batches(
        extractive_outcomes,
        batch_format="pyarrow",
        fn_kwargs={"generate": recipe.generate, "units": recipe.units},
    )
    dataset = outcomes.map_batches(
        filter_batch, batch_format="pyarrow", fn_kwargs={"chain_path": str(CHAIN)}
    )
    for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
        for row in batch.select(["pages", "pairs"]).to_pylist():
            figures.units += 1
            figures.pages += len(row["pages"])
            figures.pairs += len(row["pairs"])
            figures.pairs_kept += sum(
                all(d["passed"] for d in pair["decisions"]) for pair in row["pairs"]
            )
    figures.seconds = time.perf_counter() - start
    nodes = sum(node["Alive"] for node in ray.nodes())
    ray.shutdown()
    print(f"{nodes} node(s): {figures}", file=sys.stderr, flush=True)
    return figures


class MemorySampler:
    """Peak PSS (and RSS) summed over this process and every process of the cluster's nodes,
    and peak object-store use, sampled once a second in a thread."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.peak_pss = self.peak_rss = self.peak_plasma = self.peak_spilled = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def processes(self) -> list[psutil.Process]:
        found = {psutil.Process().pid: psutil.Process()}
        for node in self.cluster.nodes:
            for proc in node.processes:
                try:
                    for p in [proc, *proc.children(recursive=True)]:
                        found[p.pid] = p
                except psutil.NoSuchProcess:
                    continue
        return list(found.values())

    def _loop(self) -> None:
        while not self._stop.is_set():
            rss, pss = memory_of(self.processes())
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            store = store_stats(self.cluster)
            self.peak_plasma = max(self.peak_plasma, store["used"])
            self.peak_spilled = max(self.peak_spilled, store["spilled_now"])
            self._stop.wait(1.0)


STORE_FIGURES = {
    "pinned objects size": "used",  # primary copies held in the object store
    "num bytes currently spilled": "spilled_now",
    "cumulative spill requests": "spills",
    "cumulative restore requests": "restores",
}


def store_stats(cluster: LocalCluster) -> dict[str, int]:
    """Object-store figures summed over the nodes, read from the debug_state.txt each raylet
    rewrites every RAY_debug_dump_period_milliseconds (`ray memory` would need grpcio)."""
    found = dict.fromkeys(STORE_FIGURES.values(), 0)
    for node in cluster.nodes:
        try:
            lines = (node.logs() / "debug_state.txt").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, value = line.strip().lstrip("- ").partition(": ")
            if key in STORE_FIGURES and value.strip().isdigit():
                found[STORE_FIGURES[key]] += int(value)
    return found


def bench_recipe(files: list[Path]) -> Recipe:
    return Recipe(
        name="bench-cluster",
        inputs=[str(f) for f in files],
        ingest={"ocr": "never", "max_pages": None},  # every page of the long manuals too
        units={"pages_per_unit": 4},
        generate={"pairs_per_unit": 1, "max_tokens": 16, "cache": False},
        filters=str(CHAIN),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10_000, help="Pages for the memory run.")
    parser.add_argument(
        "--scaling-pages", type=int, default=1500, help="Pages for the 1- vs 2-node runs."
    )
    parser.add_argument("--object-store-mb", type=int, default=1024, help="Per node.")
    parser.add_argument(
        "--budget-gib", type=float, default=4.0, help="Peak PSS budget of the memory run."
    )
    args = parser.parse_args()
    corpus = fetch_corpus()
    # Scaling: many short documents (one ingest task each), so neither node waits on a long one.
    short = [path for path in corpus if page_count(path) <= 40]
    scaling_files, scaling_pages = stream_of(short, args.scaling_pages)
    memory_files, memory_pages = stream_of(corpus, args.pages)
    root = Path(tempfile.mkdtemp(prefix="rcb-", dir="/tmp"))  # short: Ray's socket paths
    # Ray's config variables are case-sensitive. Store figures once a second:
    os.environ["RAY_debug_dump_period_milliseconds"] = "1000"  # noqa: SIM112
    # No token: this driver's Ray reads its authentication mode once, at import.
    cluster = LocalCluster(root, object_store_mb=args.object_store_mb, token=False)
    rows: list[tuple[str, str]] = []
    try:
        cluster.add_node(num_cpus=1, resources={"head": 1})
        one = run_stream(cluster.address, bench_recipe(scaling_files), scaling_files)
        cluster.add_node(num_cpus=1)
        two = run_stream(cluster.address, bench_recipe(scaling_files), scaling_files)
        before = store_stats(cluster)
        with MemorySampler(cluster) as sampler:
            big = run_stream(cluster.address, bench_recipe(memory_files), memory_files)
        time.sleep(2)  # one more debug_state dump
        after = store_stats(cluster)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    for label, figures in (("1 node", one), ("2 nodes", two)):
        rows.append(
            (
                f"{label} x 1 CPU: {figures.pages} pages, {figures.units} units",
                f"{figures.pages_per_s:.1f} pages/s, {figures.pairs_per_s:.1f} pairs/s "
                f"({figures.pairs_kept} of {figures.pairs} pairs kept)",
            )
        )
    rows.append(("scaling, 2 nodes / 1 node", f"{two.pages_per_s / one.pages_per_s:.2f}x"))
    rows += [
        (
            f"2 nodes: {big.pages} pages streamed ({len(memory_files)} documents)",
            f"{big.pages_per_s:.1f} pages/s, {big.pairs_per_s:.1f} pairs/s",
        ),
        (
            "peak memory, driver + every process of both nodes",
            f"PSS {sampler.peak_pss / 2**30:.2f} GiB (budget {args.budget_gib:g} GiB: "
            f"{'met' if sampler.peak_pss <= args.budget_gib * 2**30 else 'NOT met'}), "
            f"RSS summed {sampler.peak_rss / 2**30:.2f} GiB",
        ),
        (
            "object store, both nodes",
            f"peak {sampler.peak_plasma / 2**20:.0f} MiB of {2 * args.object_store_mb} MiB; "
            f"spill requests {after['spills'] - before['spills']}, "
            f"peak spilled {sampler.peak_spilled / 2**20:.0f} MiB, "
            f"restore requests {after['restores'] - before['restores']}",
        ),
    ]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB; ray {ray.__version__}"
    )
    print(
        f"corpus: PDFs from Debian's {PACKAGE}; {scaling_pages} pages for scaling, "
        f"{memory_pages} for memory"
    )
    print("| measure | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
