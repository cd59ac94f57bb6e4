"""The training mixture's samples/s on the CPU without and with cuts on the pairs (issue 33).

Run: make bench-mixture   (or .venv/bin/python benchmarks/bench_mixture.py [--rows N ...])

A synthetic rated dataset (2-page rows of 4 pairs, each with a question type, a grounding score
and per-axis judge ratings, as a rated run stores them) is read two ways: the mixture stream
alone (Parquet decode and the cuts: the part the cuts change), and the stream plus the encoding
the trainer does (image decode and resize, chat template, tokens: what a training step waits
on), with the tiny random-init processor. Three configs: no cut; a cut that passes every pair
(the cost of reading qa_meta and checking it); and a real cut (about half the pairs left out,
so the encoding has less to do). Best of --repeats, runs interleaved. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import io
import platform
import random
import tempfile
import time
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from curation.schema import SAMPLE_SCHEMA
from curation.train.collate import SampleEncoder
from curation.train.config import DataConfig, MixtureEntry, RandomInitConfig
from curation.train.images import Idefics3Images
from curation.train.mixture import build_mixture
from curation.train.model import random_init_processor

TYPES = ["extractive", "multi_hop", "comparison", "yes_no"]
CUTS = {
    "none": {},
    "passes every pair": {
        "min_ratings": {"correctness": 1},
        "min_scores": {"grounding": 0.0},
        "question_types": {"exclude": ["summary"]},
        "max_pairs_per_sample": 8,
    },
    "real cut": {
        "min_ratings": {"correctness": 4},
        "min_rating_mean": 3.5,
        "min_scores": {"grounding": 0.6},
        "unrated": "drop",
        "question_types": {"exclude": ["yes_no"]},
        "max_pairs_per_sample": 2,
    },
}


def page(rng: random.Random) -> bytes:
    image = Image.new("RGB", (425, 550), "white")
    draw = ImageDraw.Draw(image)
    for line in range(12):
        draw.rectangle([30, 40 + 40 * line, 60 + rng.randint(100, 360), 52 + 40 * line], "gray")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def write_rated(folder: Path, rows: int) -> Path:
    rng = random.Random(0)
    pages = [page(rng) for _ in range(8)]
    table = []
    for i in range(rows):
        pairs = range(4)
        table.append(
            {
                "id": f"row-{i}",
                "doc_id": f"doc-{i // 10}",
                "pages": [0, 1],
                "images": [{"bytes": pages[(i + p) % 8], "path": f"{i}-{p}.png"} for p in (0, 1)],
                "texts": [
                    {
                        "user": f"What does table {p} of document {i} say about costs?",
                        "assistant": f"Costs grew by {rng.randint(1, 40)} percent in {2000 + p}.",
                        "source": "doc.pdf",
                    }
                    for p in pairs
                ],
                "page_meta": [],
                "qa_meta": [
                    {
                        "qa_id": f"{i}-{p}",
                        "question_type": rng.choice(TYPES),
                        "scores": [{"filter": "grounding", "score": rng.random(), "reason": ""}],
                        "ratings": [
                            {"axis": axis, "score": float(rng.randint(2, 5))}
                            for axis in ("relevance", "correctness", "formatting")
                        ],
                    }
                    for p in pairs
                ],
            }
        )
    (folder / "data").mkdir(parents=True)
    path = folder / "data" / "train-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(table, schema=SAMPLE_SCHEMA), path, row_group_size=100)
    return folder


def rate(
    folder: Path, cut: dict, samples: int, encoder: SampleEncoder | None
) -> tuple[float, float]:
    """Samples per second of wall time and per second of this process's CPU time (the figure
    that other jobs on a shared machine disturb least)."""
    entry = MixtureEntry.model_validate({"path": str(folder), **cut})
    stream = build_mixture([entry], seed=0, eval_fraction=0, log=lambda _m: None)
    wall, cpu = time.perf_counter(), time.process_time()
    for sample, _ in islice(stream.iterate(), samples):
        if encoder is not None:
            encoder.encode(sample)
    return samples / (time.perf_counter() - wall), samples / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--stream-samples", type=int, default=4000)
    parser.add_argument("--encode-samples", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    processor = random_init_processor(RandomInitConfig())
    data = DataConfig.model_validate({"max_length": 2048, "images": {"max_tiles": 8}})
    encoder = SampleEncoder(processor, Idefics3Images(processor, data.images), data, {})
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_rated(Path(tmp) / "rated", args.rows)
        best: dict[tuple[str, str], tuple[float, float]] = {}
        for _ in range(args.repeats):
            for name, cut in CUTS.items():
                for path, n, enc in (
                    ("stream", args.stream_samples, None),
                    ("stream + encode", args.encode_samples, encoder),
                ):
                    key, (wall, cpu) = (path, name), rate(folder, cut, n, enc)
                    old_wall, old_cpu = best.get(key, (0.0, 0.0))
                    best[key] = (max(wall, old_wall), max(cpu, old_cpu))
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}; rows {args.rows}")
    print(f"best of {args.repeats}\n")
    print("| path | cuts | samples/s (wall) | vs none | samples/CPU-s | vs none |")
    print("|---|---|---|---|---|---|")
    for (path, name), (wall, cpu) in best.items():
        base_wall, base_cpu = best[(path, "none")]
        print(
            f"| {path} | {name} | {wall:,.0f} | {wall / base_wall:.2f}x "
            f"| {cpu:,.0f} | {cpu / base_cpu:.2f}x |"
        )


if __name__ == "__main__":
    main()
