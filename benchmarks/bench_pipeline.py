"""Walking-skeleton benchmarks on the sample corpus: ingest pages/s and local-engine tokens/s.

Run: make bench   (or .venv/bin/python benchmarks/bench_pipeline.py [--repeat N])
Prints a Markdown table; record it in docs/benchmarks.md with the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import pymupdf

from curation.config import GenerateConfig, IngestConfig, UnitsConfig
from curation.generate import QAGenerator
from curation.ingest import ingest_document, iter_pages

SAMPLES = sorted((Path(__file__).resolve().parents[1] / "data" / "samples").glob("*.pdf"))


def plain_pymupdf(paths: list[Path], dpi: int) -> int:
    """The baseline: text blocks + a PNG render per page in a bare PyMuPDF loop."""
    pages = 0
    for path in paths:
        with pymupdf.open(path) as doc:
            for page in doc:
                page.get_text("blocks", sort=True)
                page.get_pixmap(dpi=dpi).tobytes("png")
                pages += 1
    return pages


def ours(paths: list[Path], cfg: IngestConfig) -> int:
    return sum(1 for path in paths for _ in iter_pages(path, "bench", cfg))


def timed(fn, *args) -> tuple[int, float]:
    start = time.perf_counter()
    count = fn(*args)
    return count, time.perf_counter() - start


def bench_ingest(repeat: int) -> list[tuple[str, str]]:
    paths = SAMPLES * repeat
    cfg = IngestConfig()
    plain_pages, plain_s = timed(plain_pymupdf, paths, cfg.dpi)
    our_pages, our_s = timed(ours, paths, cfg)
    return [
        ("ingest, plain PyMuPDF loop (text + 150 dpi PNG)", f"{plain_pages / plain_s:.1f} pages/s"),
        ("ingest, curation iter_pages (same work)", f"{our_pages / our_s:.1f} pages/s"),
        (
            "ingest ratio (curation / plain)",
            f"{(our_pages / our_s) / (plain_pages / plain_s):.2f}x",
        ),
    ]


def bench_generate() -> list[tuple[str, str]]:
    units = list(ingest_document(SAMPLES[0], IngestConfig(dpi=36), UnitsConfig(pages_per_unit=2)))
    rows = []
    for batch_size in (1, 8):
        cfg = GenerateConfig(batch_size=batch_size, max_tokens=128)
        generator = QAGenerator(cfg, UnitsConfig())
        batch = [units[i % len(units)] | {"unit_id": f"bench:{i}"} for i in range(batch_size)]
        start = time.perf_counter()
        outcomes = generator(batch)
        seconds = time.perf_counter() - start
        tokens = sum(o["completion_tokens"] for o in outcomes)
        rows.append(
            (f"local engine, SmolLM2-135M, batch {batch_size}", f"{tokens / seconds:.1f} tokens/s")
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="Passes over the sample PDFs.")
    args = parser.parse_args()
    rows = bench_ingest(args.repeat) + bench_generate()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print("| measure | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
