"""Whole-input dedup memory: `curation filter` over a flat jsonl of N pairs with a dedup-only
chain, the in-memory index (`backend: memory`) against Ray (`backend: ray`, two passes).

Run: make bench-dedup   (or .venv/bin/python benchmarks/bench_dedup.py [--pairs N])
Pairs are random 80-word texts over the sample PDFs' vocabulary (distinct from each other), with
planted near duplicates (one word changed: 5-gram Jaccard about 0.88) and exact ones (upper-cased)
among them. Each backend runs as its own `curation filter` process; a sampler reads the peak RSS
of that driver process and the peak PSS summed over it and every process it started (Ray's).
Both runs must reject the same pairs. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pymupdf
from bench_ingest import memory_of

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "data" / "samples").glob("*.pdf"))
WORDS = 80
CHAIN = "name: bench-dedup\ndedup:\n  backend: {backend}\n"


def vocabulary() -> list[str]:
    words: set[str] = set()
    for path in SAMPLES:
        with pymupdf.open(path) as doc:
            for page in doc:
                words.update(w.lower() for w in re.findall(r"[A-Za-z]{3,}", page.get_text()))
    return sorted(words)


def write_pairs(path: Path, n: int, seed: int = 0) -> tuple[int, int]:
    """n pairs; about 5% near and 2% exact copies of an earlier pair. (near, exact) planted."""
    rng = random.Random(seed)
    vocab = vocabulary()
    answers: list[str] = []
    near = exact = 0
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            roll = rng.random()
            if answers and roll < 0.05:
                words = rng.choice(answers).split()
                words[rng.randrange(len(words))] = rng.choice(vocab)
                answer = " ".join(words)
                near += 1
            elif answers and roll < 0.07:
                answer = rng.choice(answers).upper()
                exact += 1
            else:
                answer = " ".join(rng.choices(vocab, k=WORDS))
            answers.append(answer)
            row = {"id": f"p{i:07d}", "question": "What does the page say?", "answer": answer}
            fh.write(json.dumps(row) + "\n")
    return near, exact


class Sampler(threading.Thread):
    """Peak RSS of one process, and peak PSS summed over it and its descendants."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak_driver_rss = self.peak_tree_pss = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                tree = [self.root, *self.root.children(recursive=True)]
                self.peak_driver_rss = max(self.peak_driver_rss, self.root.memory_info().rss)
            except psutil.NoSuchProcess:
                return
            self.peak_tree_pss = max(self.peak_tree_pss, memory_of(tree)[1])
            self.done.wait(0.25)


def run_filter(pairs: Path, backend: str, work: Path) -> dict:
    chain = work / f"{backend}.yaml"
    chain.write_text(CHAIN.format(backend=backend))
    out = work / f"out-{backend}"
    started = time.perf_counter()
    command = [sys.executable, "-m", "curation", "filter", str(pairs), "--chain", str(chain)]
    process = subprocess.Popen(
        [*command, "--out", str(out), "--batch-size", "2048"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sampler = Sampler(process.pid)
    sampler.start()
    output, _ = process.communicate()
    sampler.done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"curation filter ({backend}) failed:\n{output[-3000:]}")
    rejects = pq.read_table(out / "rejects", columns=["qa_id", "reason"]).to_pylist()
    return {
        "wall_s": time.perf_counter() - started,
        "driver_rss": sampler.peak_driver_rss,
        "tree_pss": sampler.peak_tree_pss,
        "rejects": sorted((r["qa_id"], r["reason"]) for r in rejects),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-dedup-"))
    pairs = work / "pairs.jsonl"
    near, exact = write_pairs(pairs, args.pairs)
    results = {backend: run_filter(pairs, backend, work) for backend in ("memory", "ray")}
    same = results["memory"]["rejects"] == results["ray"]["rejects"]
    print(f"\n{args.pairs:,} pairs ({near:,} near and {exact:,} exact copies planted), ", end="")
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    print("| backend | wall | driver peak RSS | peak PSS, driver + Ray | duplicates |")
    print("|---|---|---|---|---|")
    for backend, r in results.items():
        print(
            f"| {backend} | {r['wall_s']:.0f} s | {r['driver_rss'] / 2**20:,.0f} MiB "
            f"| {r['tree_pss'] / 2**20:,.0f} MiB | {len(r['rejects']):,} |"
        )
    print(f"\nsame rejects with the same reasons: {same}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
