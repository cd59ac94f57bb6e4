"""Decontamination: building the benchmark index, loading it from its cache file, and checking
pairs (text) and page images against it.

Run: make bench-decontam   (or .venv/bin/python benchmarks/bench_decontam.py [--items N])
The benchmark is synthetic: N items (default 100,000) whose questions are 5-25 words drawn with
Zipf weights from a seeded vocabulary (the sample PDFs' words plus made-up ones, 20,000 in all),
answers 1-4 words, in a jsonl file; and 2,000 real small images (random bar charts drawn with
PIL, 320x240 PNG) in a folder. For the image lookup, 100,000 random 256-bit hashes are then added
to the index's array directly (hashing 100,000 image files is the build's cost, measured per
image on the 2,000); lookups are timed with random queries, and the candidates a lookup gets
from the LSH bands are counted for random queries, for the chart images themselves (real
images are not random: similar charts share bands) and for the sample pages. The pairs checked: 20,000 (questions 8-20 words, answers 10-40 words, same
vocabulary), 1% of them holding a benchmark question (with its answer when it is short). Pages:
the 23 sample PDF pages rendered at 150 dpi as PNG (what a run's units carry), two to a unit.
One process (one core). Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pymupdf
from PIL import Image, ImageDraw

from curation import hamming
from curation.filters import decontam
from curation.filters.decontam import DecontamFilter
from curation.filters.decontam_hashes import HASH_BITS, HASH_WORDS, bytes_hash
from curation.filters.decontam_index import file_digest
from curation.schema import Pair, UnitContext

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "data" / "samples").glob("*.pdf"))
BATCH = 256  # pairs per `decide` call


def vocabulary(rng: random.Random, size: int = 20_000) -> list[str]:
    words: set[str] = set()
    for path in SAMPLES:
        with pymupdf.open(path) as doc:
            for page in doc:
                words.update(w.lower() for w in re.findall(r"[A-Za-z]{2,}", page.get_text()))
    syllables = [a + b for a in "bcdfghklmnprstvz" for b in "aeiou"]
    while len(words) < size:
        words.add("".join(rng.choices(syllables, k=rng.randint(2, 4))))
    vocab = sorted(words)
    rng.shuffle(vocab)
    return vocab


class Words:
    """Zipf-weighted draws from the vocabulary."""

    def __init__(self, vocab: list[str], rng: random.Random) -> None:
        self.vocab, self.rng = vocab, rng
        self.cumulative = np.cumsum([1 / (rank + 1) for rank in range(len(vocab))]).tolist()

    def __call__(self, low: int, high: int) -> str:
        k = self.rng.randint(low, high)
        return " ".join(self.rng.choices(self.vocab, cum_weights=self.cumulative, k=k))


def write_items(path: Path, n: int, draw: Words) -> list[dict]:
    items = []
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            item = {"questionId": i, "question": draw(5, 25) + "?", "answer": [draw(1, 4)]}
            items.append(item)
            fh.write(json.dumps(item) + "\n")
    return items


def write_charts(folder: Path, n: int, rng: random.Random) -> None:
    folder.mkdir()
    for i in range(n):
        image = Image.new("RGB", (320, 240), "white")
        draw = ImageDraw.Draw(image)
        bars = rng.randint(3, 9)
        for b in range(bars):
            height = rng.randint(10, 200)
            x = 20 + b * (280 // bars)
            color = tuple(rng.randrange(256) for _ in range(3))
            draw.rectangle([x, 220 - height, x + 280 // bars - 6, 220], fill=color)
            draw.text((x, 224), f"{rng.randint(1990, 2030)}", fill="black")
        draw.text((10, 4), f"Chart {i}: {rng.random():.3f}", fill="black")
        image.save(folder / f"{i:05d}.png")


def make_pairs(n: int, items: list[dict], draw: Words, rng: random.Random) -> tuple[list, int]:
    pairs, planted = [], 0
    for i in range(n):
        question, answer = draw(8, 20) + "?", draw(10, 40) + "."
        if rng.random() < 0.01:
            item = rng.choice(items)
            question = f"{draw(1, 3)} {item['question'].upper()}"
            answer = f"{answer} {item['answer'][0]}"
            planted += 1
        pairs.append(Pair("", question, answer, unit=UnitContext(f"u{i}")))
    return pairs, planted


def page_pngs() -> list[bytes]:
    pngs = []
    for path in SAMPLES:
        with pymupdf.open(path) as doc:
            pngs.extend(page.get_pixmap(dpi=150).tobytes("png") for page in doc)
    return pngs


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def build_and_load(work: Path, settings: dict) -> dict:
    process = psutil.Process()
    rss = process.memory_info().rss
    first = DecontamFilter.model_validate(settings)
    index, build_s = timed(first.index)
    grown = process.memory_info().rss - rss
    cache = next((work / "cache").glob("*.npz"))
    files = [f for b in first.benchmarks for f in b.files()]
    _, key_s = timed(lambda: file_digest(files, first.settings(), stat_only=False))
    decontam._MEMO.clear()
    second = DecontamFilter.model_validate(settings)
    _, load_s = timed(second.index)
    assert second.source == "cache file", second.source
    arrays = sum(a.nbytes for a in index.arrays.values())
    return {
        "build_s": build_s,
        "load_s": load_s,
        "key_s": key_s,
        "cache_mb": cache.stat().st_size / 2**20,
        "arrays_mb": arrays / 2**20,
        "rss_mb": grown / 2**20,
        "grams": len(index.arrays["gram_keys"]),
        "short": sum(len(v) for k, v in index.arrays.items() if k.endswith("_items"))
        - len(index.arrays["gram_items"]),
        "filter": second,
    }


def check_text(flt: DecontamFilter, pairs: list[Pair]) -> tuple[float, int]:
    start, rejected = time.perf_counter(), 0
    for i in range(0, len(pairs), BATCH):
        rejected += sum(not d.passed for d in flt.decide(pairs[i : i + BATCH]))
    return len(pairs) / (time.perf_counter() - start), rejected


def random_hashes(rng: random.Random, n: int) -> np.ndarray:
    """n random 256-bit hashes, as the index stores them: (n, 4) uint64."""
    words = [rng.getrandbits(64) for _ in range(n * HASH_WORDS)]
    return np.array(words, np.uint64).reshape(n, HASH_WORDS)


def nearest_pair(hashes: np.ndarray) -> int:
    """The fewest bits between two different hashes of `hashes` (all pairs, in blocks)."""
    best = HASH_BITS
    for start in range(0, len(hashes), 256):
        block = hamming.popcount(hashes[start : start + 256, None, :] ^ hashes[None, :, :])
        rows = np.arange(len(block))
        block[rows, start + rows] = HASH_BITS  # an image and itself
        best = min(best, int(block.min()))
    return best


def check_images(flt: DecontamFilter, pngs: list[bytes], rng: random.Random, pages: int) -> dict:
    index, distance = flt.index(), flt.image_distance
    charts = index.arrays["image_hashes"].copy()
    randoms = random_hashes(rng, 100_000)
    index.arrays["image_hashes"] = np.concatenate([charts, randoms])
    index.image_labels += [f"random {i}" for i in range(len(randoms))]
    index.bands = {}
    bands, band_s = timed(lambda: index.band(distance))
    queries = list(random_hashes(rng, 20_000))
    _, lookup_s = timed(lambda: [index.nearest_image(q, distance) for q in queries])
    hashes, phash_s = timed(lambda: [bytes_hash(p) for p in pngs])
    counted = {
        name: [len(np.unique(index.candidates(q, distance))) for q in group]
        for name, group in (("random", queries[:2_000]), ("charts", charts), ("pages", hashes))
    }
    units = [pngs[(2 * i) % len(pngs) : (2 * i) % len(pngs) + 2] for i in range(pages // 2)]
    batch = [
        Pair("", "Q?", "A.", unit=UnitContext(f"u{i}", images=imgs)) for i, imgs in enumerate(units)
    ]
    decisions, decide_s = timed(lambda: flt.decide(batch))
    return {
        "hashes": len(index.arrays["image_hashes"]),
        "real": len(charts),
        "distance": distance,
        "band_s": band_s,
        "bands": [width for _, width, _, _ in bands],
        "band_mb": sum(v.nbytes + o.nbytes for _, _, v, o in bands) / 2**20,
        "candidates": {k: (float(np.mean(v)), max(v)) for k, v in counted.items()},
        "nearest_charts": nearest_pair(charts),
        "lookups_per_s": len(queries) / lookup_s,
        "phash_per_s": len(pngs) / phash_s,
        "pages_per_s": sum(len(u) for u in units) / decide_s,
        "units_dropped": sum(not d.passed for d in decisions),
        "units": len(units),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--images", type=int, default=2_000)
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--pages", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(0)
    work = Path(tempfile.mkdtemp(prefix="bench-decontam-"))
    draw = Words(vocabulary(rng), rng)
    items = write_items(work / "bench.jsonl", args.items, draw)
    write_charts(work / "images", args.images, rng)
    bench = {"name": "synth", "path": str(work / "bench.jsonl"), "images": str(work / "images")}
    settings = {"benchmarks": [bench], "cache_dir": str(work / "cache")}
    built = build_and_load(work, settings)
    pairs, planted = make_pairs(args.pairs, items, draw, rng)
    text_rate, rejected = check_text(built["filter"], pairs)
    images = check_images(built["filter"], page_pngs(), rng, args.pages)
    report(args, built, (text_rate, rejected, planted), images)


def report(args, built: dict, text: tuple, images: dict) -> None:
    text_rate, rejected, planted = text
    print(
        f"\n{args.items:,} items ({built['grams']:,} 13-gram hashes, {built['short']:,} short "
        f"items), {images['real']:,} image files; {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}\n"
    )
    rows = [
        (
            "index build (read, tokenize, hash; phash of the image files)",
            f"{built['build_s']:.1f} s",
        ),
        (
            "cache file (.npz) / index arrays in memory",
            f"{built['cache_mb']:.1f} MiB / {built['arrays_mb']:.1f} MiB",
        ),
        ("process RSS growth for the build", f"{built['rss_mb']:.0f} MiB"),
        (
            "index load in a fresh process (sha256 of the files + .npz read)",
            f"{built['load_s']:.2f} s",
        ),
        ("  of which the sha256 cache key", f"{built['key_s']:.2f} s"),
        (f"text check, {args.pairs:,} pairs in batches of {BATCH}", f"{text_rate:,.0f} pairs/s"),
        ("pairs rejected / benchmark questions planted", f"{rejected} / {planted}"),
        (
            f"LSH bands ({len(images['bands'])} of {min(images['bands'])}-"
            f"{max(images['bands'])} bits, distance {images['distance']}) for "
            f"{images['hashes']:,} hashes: time / memory",
            f"{images['band_s'] * 1000:.0f} ms / {images['band_mb']:.1f} MiB",
        ),
        ("hash lookups (random 256-bit queries)", f"{images['lookups_per_s']:,.0f} /s"),
        *(
            (f"candidates per lookup, {name} queries: mean / max", f"{mean:.1f} / {most}")
            for name, (mean, most) in images["candidates"].items()
        ),
        (
            f"closest two of the {images['real']:,} chart images (bits of 256)",
            f"{images['nearest_charts']}",
        ),
        ("phash of a 150 dpi page PNG (decode included)", f"{images['phash_per_s']:.1f} pages/s"),
        ("image check through `decide` (2 pages a unit)", f"{images['pages_per_s']:.1f} pages/s"),
        (
            "sample units dropped (none is a benchmark image)",
            f"{images['units_dropped']} / {images['units']}",
        ),
    ]
    print("| measure | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
