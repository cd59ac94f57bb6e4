"""Decontamination's index: the arrays a lookup needs, built once from the benchmark files
(word n-gram and short-question hashes, sorted, with their items; the benchmark images' hashes),
stored as an .npz file named by `file_digest`, and the lookup of an image hash through the
banded Hamming search of `curation.hamming`.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from curation.config import ConfigError
from curation.filters.decontam_benchmarks import Benchmark, answer_texts, item_id, table_rows
from curation.filters.decontam_hashes import (
    HASH_WORDS,
    bytes_hash,
    image_hash,
    sequence_hash,
    window_hashes,
    words_of,
)
from curation.hamming import BandArrays, sorted_pairs

INDEX_FORMAT = 2  # part of the cache key: bump when the index layout changes
SNIPPET_CHARS = 60


@dataclass
class Items:
    """What a build collects from the benchmark tables before the arrays are made."""

    labels: list[str] = field(default_factory=list)  # per item: 'docvqa item 12: "what ..."'
    segments: list[list[str]] = field(default_factory=list)  # question and answers, as words
    owners: list[int] = field(default_factory=list)  # the item of each segment
    short: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # L -> (hash, item)
    answers: dict[int, list[str]] = field(default_factory=dict)  # short item -> joined answers
    image_hashes: list[np.ndarray] = field(default_factory=list)
    image_labels: list[str] = field(default_factory=list)


class DecontamIndex:
    """The arrays a lookup needs: n-gram and short-item hashes (sorted, with their items) and
    the benchmark image hashes with their LSH bands."""

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        self.arrays, self.meta = arrays, meta
        self.labels: list[str] = meta["labels"]
        self.answers = {int(k): v for k, v in meta["answers"].items()}
        self.image_labels: list[str] = meta["image_labels"]
        self.short_lengths = {int(k.split("_")[1]) for k in arrays if k.startswith("short_")}
        self.bands: dict[int, BandArrays] = {}

    def band(self, distance: int) -> BandArrays:
        """The image hashes sorted by each of `distance + 1` bands (at least 4, so that a band
        fits a uint64), made once per distance. 256 bits in 21 bands (distance 20) are bands of
        12-13 bits: 6 bytes a hash a band (uint16 values, int32 images)."""
        if distance not in self.bands:
            self.bands[distance] = BandArrays(self.arrays["image_hashes"], distance)
        return self.bands[distance]

    def candidates(self, value: np.ndarray, distance: int) -> np.ndarray:
        """The benchmark images equal to `value` on at least one band, an image once per band
        it shares: a superset of those within `distance` bits (pigeonhole)."""
        return self.band(distance).candidates(value)

    def nearest_image(self, value: np.ndarray, distance: int) -> tuple[int, int] | None:
        """(benchmark image, bits apart) of the closest image within `distance`, or None."""
        return self.band(distance).nearest(value)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        meta = np.frombuffer(json.dumps(self.meta).encode(), np.uint8)
        np.savez(buffer, meta=meta, **self.arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> DecontamIndex:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files if k != "meta"}
            meta = json.loads(npz["meta"].tobytes())
        return cls(arrays, meta)


def add_item(items: Items, bench: Benchmark, row: dict, number: int, ngram: int, least: int) -> str:
    """Collect one benchmark row: its n-gram segments, or its whole question when short."""
    question = words_of(str(row.get(bench.question) or ""))
    ident = item_id(bench, row, number)
    if not question:
        return ident
    answers = [words_of(a) for a in answer_texts(row.get(bench.answer) if bench.answer else None)]
    item = len(items.labels)
    snippet = " ".join(question)
    if len(snippet) > SNIPPET_CHARS:
        snippet = snippet[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " ..."
    items.labels.append(f'{bench.name} item {ident}: "{snippet}"')
    for segment in [question, *answers]:
        if len(segment) >= ngram:
            items.segments.append(segment)
            items.owners.append(item)
    if least <= len(question) < ngram:
        items.short.setdefault(len(question), []).append((sequence_hash(question), item))
        items.answers[item] = [" ".join(a) for a in answers if a]
    return ident


def add_table(items: Items, bench: Benchmark, ngram: int, least: int) -> dict[str, list[str]]:
    """Collect the benchmark table's items; returns image file name -> the items naming it."""
    named: dict[str, list[str]] = {}
    for number, row in enumerate(table_rows(bench)):
        ident = add_item(items, bench, row, number, ngram, least)
        image = row.get(bench.image)
        if isinstance(image, dict):  # a datasets Image column: {"bytes": ..., "path": ...}
            image = image.get("bytes") or image.get("path")
        if isinstance(image, str) and image:
            named.setdefault(Path(image).name, []).append(ident)
        elif isinstance(image, bytes):
            value = bytes_hash(image)
            if value is None:
                raise ConfigError(f"{bench.path}: item {ident}: its image cannot be read")
            items.image_hashes.append(value)
            items.image_labels.append(f"{bench.name} item {ident}'s image")
    return named


def add_images(items: Items, bench: Benchmark, named: dict[str, list[str]]) -> None:
    """Hash every image of the benchmark's folder, labelled with the items that name it."""
    for name, path in bench.image_files():
        try:
            with Image.open(path) as image:
                image.draft("L", (256, 256))
                value = image_hash(image)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise ConfigError(f"{path}: cannot read the benchmark image: {exc}") from exc
        ids = named.get(Path(name).name, [])
        which = f" (item {', '.join(ids[:3])}{', ...' if len(ids) > 3 else ''})" if ids else ""
        items.image_hashes.append(value)
        items.image_labels.append(f"{bench.name} image {name}{which}")


def build_index(benchmarks: list[Benchmark], ngram: int, least: int) -> DecontamIndex:
    """Read every benchmark and make the index's arrays."""
    items = Items()
    for bench in benchmarks:
        named = add_table(items, bench, ngram, least) if bench.path else {}
        add_images(items, bench, named)
    empty = (np.zeros(0, np.uint64), np.zeros(0, np.int64))
    grams, segments = window_hashes(items.segments, {ngram}).get(ngram, empty)
    keys, gram_items = sorted_pairs(grams, np.array(items.owners, np.int32)[segments])
    first = np.ones(len(keys), bool)
    first[1:] = keys[1:] != keys[:-1]  # one item per n-gram: its first
    arrays = {"gram_keys": keys[first], "gram_items": gram_items[first]}
    for length, entries in items.short.items():
        short_keys, short_items = sorted_pairs([h for h, _ in entries], [i for _, i in entries])
        arrays[f"short_{length}_keys"], arrays[f"short_{length}_items"] = short_keys, short_items
    arrays["image_hashes"] = np.array(items.image_hashes, np.uint64).reshape(-1, HASH_WORDS)
    meta = {"labels": items.labels, "answers": items.answers, "image_labels": items.image_labels}
    return DecontamIndex(arrays, meta)


def file_digest(paths: list[Path], settings: dict, stat_only: bool) -> str:
    """sha256 of the settings and of the files' bytes (or, for the in-process memo, of their
    size and modification time)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for path in paths:
        digest.update(str(path).encode() + b"\0")
        if stat_only:
            stat = path.stat()
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}\0".encode())
            continue
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()
