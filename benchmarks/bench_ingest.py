"""Ingest benchmarks on real PDFs the project did not make (Debian's LaTeX documentation).

Run: make bench-ingest   (or .venv/bin/python benchmarks/bench_ingest.py [--memory-pages N])

Measures, on the same files:
- text + 150 dpi render pages/s: the Ray pipeline with 1 and 2 workers vs a plain PyMuPDF loop,
  for the whole run and after its start-up (the first block), which a long corpus amortizes;
- OCR pages/s: the pipeline (ocr: always) vs a plain RapidOCR loop;
- OCR character error rate against the text layer of born-digital pages;
- peak memory (RSS and PSS of the driver and every Ray process) while streaming N pages.
The PDFs come from the Debian package texlive-latex-base-doc, fetched with `apt-get download`
into .cache/bench-pdfs (never committed). Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pymupdf
import ray
from debian_docs import fetch

from curation.config import IngestConfig, Recipe, UnitsConfig
from curation.ingest.ocr import RapidOCRBackend
from curation.pipeline import build_units
from curation.runtime import init_ray

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench-pdfs"
PACKAGE = "texlive-latex-base-doc"


def fetch_corpus(package: str = PACKAGE) -> list[Path]:
    """Real documentation PDFs of one Debian package, downloaded once into the cache."""
    extracted = fetch(package, CACHE)
    pdfs = []
    for path in sorted(extracted.rglob("*.pdf")):
        try:
            with pymupdf.open(path) as doc:
                if doc.page_count >= 4 and not doc.needs_pass:
                    pdfs.append(path)
        except Exception:
            continue
    return pdfs


def recipe_for(files: list[Path], **ingest: object) -> Recipe:
    return Recipe(name="bench", inputs=[str(f) for f in files], ingest=ingest)


def plain_pymupdf(files: list[Path], max_pages: int) -> int:
    """The baseline: text blocks + a 150 dpi PNG per page in one bare loop."""
    pages = 0
    for path in files:
        with pymupdf.open(path) as doc:
            for page in list(doc)[:max_pages]:
                page.get_text("blocks", sort=True)
                page.get_pixmap(dpi=150).tobytes("png")
                pages += 1
    return pages


def pipeline_pages(recipe: Recipe, files: list[Path], num_cpus: int) -> tuple[int, float]:
    """Pages through build_units on a fresh local Ray with num_cpus; (pages, seconds)."""
    run = pipeline_run(recipe, files, num_cpus)
    return run.pages, run.seconds


@dataclass
class PipelineRun:
    """One build_units run: pages and seconds in all, and when the first block arrived (the
    start-up: Ray Data's plan, worker processes and their imports, the first document)."""

    pages: int
    seconds: float
    first_pages: int
    first_seconds: float

    @property
    def steady_rate(self) -> float:
        """Pages/s once the first block is in: the pipeline's rate on a corpus long enough for
        its start-up not to count."""
        return (self.pages - self.first_pages) / (self.seconds - self.first_seconds)


def pipeline_run(recipe: Recipe, files: list[Path], num_cpus: int) -> PipelineRun:
    """build_units on a fresh local Ray with num_cpus, timed from the plan to the last block."""
    ray.shutdown()
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    init_ray()
    start = time.perf_counter()
    pages, first = 0, None
    for batch in build_units(recipe, files).iter_batches(batch_format="pyarrow", batch_size=None):
        pages += sum(len(p) for p in batch.column("pages").to_pylist())
        if first is None:
            first = (pages, time.perf_counter() - start)
    return PipelineRun(pages, time.perf_counter() - start, *first)


def bench_render(files: list[Path], max_pages: int) -> list[tuple[str, str]]:
    plain_pymupdf(files, 1)  # files and PyMuPDF warm, as they are for the pipeline runs after
    start = time.perf_counter()
    plain = plain_pymupdf(files, max_pages)
    plain_rate = plain / (time.perf_counter() - start)
    recipe = recipe_for(files, ocr="never", max_pages=max_pages)
    # The machine's own ceiling for two workers: the plain loop in two processes, no Ray.
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.starmap(plain_pymupdf, [(files[0::2], 1), (files[1::2], 1)])  # started, warm
        start = time.perf_counter()
        halves = pool.starmap(plain_pymupdf, [(files[0::2], max_pages), (files[1::2], max_pages)])
        two_rate = sum(halves) / (time.perf_counter() - start)
    runs = {workers: pipeline_run(recipe, files, workers) for workers in (1, 2)}
    rows = [
        (f"plain PyMuPDF loop, {plain} pages, 1 process", f"{plain_rate:.1f} pages/s"),
        (
            "plain PyMuPDF loop, 2 processes (half the files each)",
            f"{two_rate:.1f} pages/s ({two_rate / plain_rate:.2f}x plain)",
        ),
    ]
    for workers, run in runs.items():
        rate = run.pages / run.seconds
        rows += [
            (
                f"pipeline, {workers} worker{'s' * (workers > 1)} (ocr: never), whole run",
                f"{rate:.1f} pages/s ({rate / plain_rate:.2f}x plain)",
            ),
            (
                f"pipeline, {workers} worker{'s' * (workers > 1)}: start-up (first block)",
                f"{run.first_seconds:.1f} s ({run.first_pages} pages)",
            ),
            (
                f"pipeline, {workers} worker{'s' * (workers > 1)}: after the first block",
                f"{run.steady_rate:.1f} pages/s ({run.steady_rate / plain_rate:.2f}x plain)",
            ),
        ]
    return rows


def normalise(text: str) -> str:
    return " ".join(text.split())


def bench_ocr(files: list[Path], n_pages: int) -> list[tuple[str, str]]:
    from rapidfuzz.distance import Levenshtein

    cfg = IngestConfig()
    backend = RapidOCRBackend()
    pages = [(path, i) for path in files for i in range(2)][:n_pages]
    cers, start = [], time.perf_counter()
    for path, index in pages:
        with pymupdf.open(path) as doc:
            page = doc[index]
            layer = normalise(page.get_text())
            result = backend.recognize(page.get_pixmap(dpi=cfg.dpi).tobytes("png"))
        if layer:
            cers.append(Levenshtein.distance(normalise(result.text), layer) / len(layer))
    plain_rate = len(pages) / (time.perf_counter() - start)
    docs = sorted({path for path, _ in pages})
    recipe = recipe_for(docs, ocr="always", max_pages=2)
    units = UnitsConfig(pages_per_unit=2)
    recipe = recipe.model_copy(update={"units": units})
    done, seconds = pipeline_pages(recipe, docs, 2)
    rate = done / seconds
    p90 = statistics.quantiles(cers, n=10)[-1] if len(cers) >= 2 else cers[0]
    return [
        (f"plain RapidOCR loop (render + OCR), {len(pages)} pages", f"{plain_rate:.2f} pages/s"),
        (
            "pipeline, ocr: always, 1 OCR actor",
            f"{rate:.2f} pages/s ({rate / plain_rate:.2f}x plain)",
        ),
        (
            f"OCR CER vs text layer, {len(cers)} born-digital pages",
            f"mean {statistics.mean(cers):.1%}, p90 {p90:.1%}",
        ),
    ]


def tree_memory(root: psutil.Process) -> tuple[int, int]:
    """(RSS, PSS) summed over a process and its descendants, in bytes."""
    return memory_of([root, *root.children(recursive=True)])


def memory_of(processes: list[psutil.Process]) -> tuple[int, int]:
    """(RSS, PSS) summed over the processes still alive, in bytes."""
    rss = pss = 0
    for proc in processes:
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss, pss


def bench_memory(files: list[Path], target_pages: int) -> list[tuple[str, str]]:
    counts = {}
    for path in files:
        with pymupdf.open(path) as doc:
            counts[path] = doc.page_count
    stream, total = [], 0
    while total < target_pages:
        for path in files:
            stream.append(path)
            total += counts[path]
            if total >= target_pages:
                break
    peak = [0, 0]
    stop = threading.Event()
    me = psutil.Process()

    def sample() -> None:
        while not stop.is_set():
            rss, pss = tree_memory(me)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            stop.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    pages, seconds = pipeline_pages(recipe_for(stream, ocr="never", max_pages=None), stream, 2)
    stop.set()
    sampler.join()
    spilled = spill_bytes()
    return [
        (
            f"streamed {pages} pages ({len(stream)} documents), 2 workers",
            f"{pages / seconds:.1f} pages/s",
        ),
        (
            "peak memory, driver + all Ray processes",
            f"RSS {peak[0] / 2**30:.2f} GiB, PSS {peak[1] / 2**30:.2f} GiB",
        ),
        ("object store spilled to disk", f"{spilled / 2**20:.0f} MiB"),
    ]


def spill_bytes() -> int:
    """Bytes Ray spilled from its object store in this session (0 when it never spilled)."""
    session = Path("/tmp/ray/session_latest")
    spill_dirs = list(session.glob("**/ray_spilled_objects*")) + list(
        Path("/tmp").glob("ray_spilled_objects*")
    )
    return sum(f.stat().st_size for d in spill_dirs for f in d.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=24, help="PDFs for the throughput runs.")
    parser.add_argument("--max-pages", type=int, default=15, help="Pages per PDF for throughput.")
    parser.add_argument("--ocr-pages", type=int, default=16, help="Pages for the OCR runs.")
    parser.add_argument("--memory-pages", type=int, default=5000, help="Pages for the memory run.")
    args = parser.parse_args()
    corpus = fetch_corpus()
    files = corpus[: args.docs]
    rows = bench_render(files, args.max_pages)
    if args.ocr_pages:
        rows += bench_ocr(files, args.ocr_pages)
    if args.memory_pages:
        rows += bench_memory(corpus, args.memory_pages)
    ray.shutdown()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"
    )
    print(f"corpus: {len(corpus)} PDFs from Debian's {PACKAGE}; {len(files)} used for throughput")
    print("| measure | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
