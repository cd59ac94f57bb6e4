"""Benchmark decontamination: drop pairs whose text, or units whose page images, come from the
test items of an evaluation benchmark (DocVQA, ChartQA...), as FineVision did against 66.

Text: the words of a pair (NFKC, case-folded runs of word characters, punctuation dropped) are
looked up against the benchmark items' word n-grams (13 words, the GPT-3 / DataTrove
convention). A benchmark question shorter than that (most DocVQA and ChartQA questions) is
matched whole, as a contiguous run of the pair's words, and only from `min_item_words` words up;
with `short_item_answer` its answer must be in the pair too, since a short question alone is
usually a template ("what is the title of the document") asked of every document.

Images: a unit is dropped when one of its page images is within `image_distance` bits of a
benchmark image (256-bit perceptual hashes, `imagehash.phash` with hash_size 16: at 64 bits two
different text pages of a similar layout are often 0-2 bits apart), found through LSH bands:
split in `image_distance + 1` bands, a hash within that distance equals a benchmark hash on at
least one band (pigeonhole), and only those candidates get the exact bit count.

The index is built once: on the first `decide`, stored under `cache_dir` as an .npz file named
by the sha256 of the benchmark files' bytes and the settings that shape it (written atomically),
so every other worker process loads it instead; a process keeps the loaded index in memory too.
Benchmark text is data: it is tokenized and hashed, never evaluated or rendered.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Literal

import imagehash
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from pydantic import Field, PrivateAttr, field_validator, model_validator

from curation.config import ConfigError, StrictModel
from curation.files import write_atomic
from curation.filters.base import Filter, PairContext
from curation.schema import Decision

INDEX_FORMAT = 2  # part of the cache key: bump when the index layout changes
TABLE_SUFFIXES = (".jsonl", ".parquet")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
ID_COLUMNS = ("id", "questionId")  # item ids when the benchmark names no `id` column
MULTIPLIER = np.uint64(0x100000001B3)  # odd: the polynomial over word hashes, mod 2^64
MASK64 = (1 << 64) - 1
SNIPPET_CHARS = 60
HASH_SIDE = 128  # an image's short side is reduced to 1-2x this before its phash
HASH_SIZE = 16  # phash reads a 64x64 grey image and keeps 16x16 DCT coefficients
HASH_BITS = HASH_SIZE * HASH_SIZE
HASH_WORDS = HASH_BITS // 64  # a hash is stored as 4 uint64: bit b in word b // 64
WORD = re.compile(r"[^\W_]+")  # letters and digits: `tokens.PLAIN_WORD` without "_"
THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_MEMO: dict[str, DecontamIndex] = {}  # loaded indexes of this process, by files' stat + settings


def words_of(text: str) -> list[str]:
    """NFKC, case-folded runs of letters and digits: punctuation (underscores too) and spacing
    dropped, and thousands separators ("1,250" and "1250" are one word)."""
    return WORD.findall(THOUSANDS.sub("", unicodedata.normalize("NFKC", text or "")).casefold())


@lru_cache(maxsize=1 << 18)
def word_hash(word: str) -> int:
    """A 64-bit hash of a word, the same in every process (blake2b, not Python's salted hash)."""
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


def sequence_hash(words: list[str]) -> int:
    """The hash of a whole run of words: what `window_hashes` gives for the same run."""
    value = 0
    for word in words:
        value = (value * int(MULTIPLIER) + word_hash(word)) & MASK64
    return value


def window_hashes(
    sequences: list[list[str]], lengths: set[int]
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """For each length L: the hashes of every run of L consecutive words of each sequence, and
    the sequence each run is in (runs never cross from one sequence into the next)."""
    sizes = np.fromiter(map(len, sequences), np.int64, len(sequences))
    owners = np.repeat(np.arange(len(sequences)), sizes)
    codes = np.fromiter(
        (word_hash(w) for seq in sequences for w in seq), np.uint64, int(sizes.sum())
    )
    found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    values = np.zeros(len(codes), np.uint64)
    for length in range(1, max(lengths, default=0) + 1):
        if len(codes) < length:
            break
        # values[j] is the hash of the run of `length` words from position j
        values = values[: len(codes) - length + 1] * MULTIPLIER + codes[length - 1 :]
        if length in lengths:
            whole = owners[: len(values)] == owners[length - 1 :]
            found[length] = values[whole], owners[: len(values)][whole]
    return found


def popcount(values: np.ndarray) -> np.ndarray:
    """Set bits of each row of uint64 words (shape (..., words)): the Hamming weight per row
    (words added column by column: twice as fast as `sum(axis=-1)` on a few hundred rows)."""
    if not hasattr(np, "bitwise_count"):
        return np.unpackbits(values.view(np.uint8), axis=-1).sum(axis=-1, dtype=np.int32)
    counts = np.bitwise_count(values)
    total = counts[..., 0].astype(np.int32)
    for word in range(1, counts.shape[-1]):
        total += counts[..., word]
    return total


def image_hash(image: Image.Image) -> np.ndarray:
    """The 256-bit perceptual hash of an image, as 4 uint64 words: `imagehash.phash` (hash_size
    16) of its grey levels, box-reduced first to 128-255 pixels on the short side (phash reads
    64x64; on a 150 dpi page 1.2 ms instead of 18, and every image, benchmark or page, is
    hashed the same way)."""
    grey = image.convert("L")
    factor = min(grey.size) // HASH_SIDE
    reduced = grey.reduce(factor) if factor > 1 else grey
    bits = imagehash.phash(reduced, hash_size=HASH_SIZE).hash.flatten()
    return np.packbits(bits).view(">u8").astype(np.uint64)


def hash_int(value: np.ndarray) -> int:
    """A hash's words as one int, bit b of the hash being bit b of the int."""
    return sum(int(word) << (64 * k) for k, word in enumerate(value))


def band_values(hashes: np.ndarray, start: int, width: int) -> np.ndarray:
    """Bits `start` to `start + width` (at most 64, maybe across two words) of each hash, in the
    smallest unsigned type that holds them."""
    word, offset = divmod(start, 64)
    values = hashes[:, word] >> np.uint64(offset)
    if offset + width > 64:
        values = values | (hashes[:, word + 1] << np.uint64(64 - offset))
    if width < 64:
        values = values & np.uint64((1 << width) - 1)
    dtype = np.uint16 if width <= 16 else np.uint32 if width <= 32 else np.uint64
    return values.astype(dtype)


def bytes_hash(data: bytes) -> np.ndarray | None:
    """The perceptual hash of encoded image bytes, or None when they are not a readable image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("L", (256, 256))  # JPEG: decoded at a reduced size
            return image_hash(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


class Benchmark(StrictModel):
    """One benchmark: a table of its test items (jsonl or parquet) and/or a folder of its images."""

    name: str = Field(min_length=1)
    path: str | None = Field(
        None, description="A .jsonl or .parquet file of items (relative to the working folder)."
    )
    question: str = Field("question", description="The column holding an item's question.")
    answer: str | None = Field(
        "answer", description="The column of its answer (a string or a list); null: none."
    )
    id: str | None = Field(None, description="The column of item ids; default `id`/`questionId`.")
    images: str | None = Field(None, description="A folder of the benchmark's images.")
    image: str = Field(
        "image",
        description="The column naming each item's image file in `images` (or holding its bytes).",
    )

    @field_validator("path")
    @classmethod
    def _table_exists(cls, path: str | None) -> str | None:
        if path is not None:
            if not Path(path).is_file():
                raise ValueError(f"no benchmark file {path} (from {Path.cwd()})")
            if Path(path).suffix.lower() not in TABLE_SUFFIXES:
                raise ValueError(f"{path}: not a .jsonl or .parquet file")
        return path

    @field_validator("images")
    @classmethod
    def _folder_exists(cls, folder: str | None) -> str | None:
        if folder is not None and not Path(folder).is_dir():
            raise ValueError(f"no image folder {folder} (from {Path.cwd()})")
        return folder

    @model_validator(mode="after")
    def _has_something(self) -> Benchmark:
        if self.path is None and self.images is None:
            raise ValueError(f"benchmark {self.name}: give a `path`, an `images` folder or both")
        return self

    def image_files(self) -> list[tuple[str, Path]]:
        """(name relative to the folder, path) of every image in `images`, sorted."""
        if self.images is None:
            return []
        folder = Path(self.images)
        files = (p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        return sorted((p.relative_to(folder).as_posix(), p) for p in files if p.is_file())

    def files(self) -> list[Path]:
        return ([Path(self.path)] if self.path else []) + [p for _, p in self.image_files()]


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
        self.bands: dict[int, list[tuple[int, int, np.ndarray, np.ndarray]]] = {}

    def band(self, distance: int) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
        """The image hashes sorted by each of `distance + 1` bands (at least 4, so that a band
        fits a uint64) of near-equal width, made once per distance: (start bit, width, sorted
        band values in a uint16/32/64 array, their images as int32). 256 bits in 21 bands
        (distance 20) are bands of 12-13 bits: 6 bytes a hash a band."""
        if distance not in self.bands:
            hashes, bands = self.arrays["image_hashes"], []
            count, start = max(distance + 1, HASH_WORDS), 0
            for k in range(count):
                width = HASH_BITS // count + (1 if k < HASH_BITS % count else 0)
                values = band_values(hashes, start, width)
                order = np.argsort(values, kind="stable").astype(np.int32)
                bands.append((start, width, values[order], order))
                start += width
            self.bands[distance] = bands
        return self.bands[distance]

    def candidates(self, value: np.ndarray, distance: int) -> np.ndarray:
        """The benchmark images equal to `value` on at least one band, an image once per band
        it shares: a superset of those within `distance` bits (pigeonhole)."""
        number, found = hash_int(value), []
        for start, width, values, order in self.band(distance):
            key = values.dtype.type((number >> start) & ((1 << width) - 1))
            lo, hi = values.searchsorted(key, "left"), values.searchsorted(key, "right")
            if hi > lo:
                found.append(order[lo:hi])
        return np.concatenate(found) if found else np.zeros(0, np.int32)

    def nearest_image(self, value: np.ndarray, distance: int) -> tuple[int, int] | None:
        """(benchmark image, bits apart) of the closest image within `distance`, or None."""
        found = self.candidates(value, distance)
        if not len(found):
            return None
        bits = popcount(self.arrays["image_hashes"].take(found, axis=0) ^ value)
        best = int(np.argmin(bits))
        return (int(found[best]), int(bits[best])) if bits[best] <= distance else None

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


def sorted_pairs(keys: object, items: object) -> tuple[np.ndarray, np.ndarray]:
    """Hashes sorted (duplicates kept, in item order), with the item of each."""
    keys_array = np.asarray(keys, dtype=np.uint64)
    items_array = np.asarray(items, dtype=np.int32)
    order = np.argsort(keys_array, kind="stable")
    return keys_array[order], items_array[order]


def matching(keys: np.ndarray, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each probe: whether `keys` (sorted) holds it, and where its first copy is."""
    at = np.searchsorted(keys, probes)
    inside = at < len(keys)
    hit = np.zeros(len(probes), bool)
    hit[inside] = keys[at[inside]] == probes[inside]
    return hit, at


def jsonl_rows(path: Path) -> Iterator[dict]:
    try:
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path}: line {number}: not JSON: {exc.msg}") from exc
                if not isinstance(row, dict):
                    raise ConfigError(f"{path}: line {number}: not a JSON object")
                yield row
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc


def parquet_rows(path: Path, columns: list[str]) -> Iterator[dict]:
    try:
        table = pq.ParquetFile(path)
        names = set(table.schema_arrow.names)
        for batch in table.iter_batches(
            batch_size=4096, columns=[c for c in columns if c in names]
        ):
            yield from batch.to_pylist()
    except (OSError, pa.ArrowException) as exc:
        raise ConfigError(f"{path}: cannot read as parquet: {exc}") from exc


def table_rows(bench: Benchmark) -> Iterator[dict]:
    """The benchmark's rows (only the columns it reads); a column missing from every row is a
    ConfigError naming the file and the field."""
    path = Path(bench.path)
    roles = {"question": bench.question, "answer": bench.answer, "id": bench.id}
    wanted = [column for column in roles.values() if column]
    columns = [*wanted, *([] if bench.id else ID_COLUMNS), bench.image]
    rows = jsonl_rows(path) if path.suffix.lower() == ".jsonl" else parquet_rows(path, columns)
    seen: set[str] = set()
    for row in rows:
        seen.update(c for c in wanted if c in row)
        yield row
    for role, column in roles.items():
        if column and column not in seen:
            raise ConfigError(
                f"{path}: field '{role}': no column '{column}' in the benchmark file "
                f"(set `{role}:` on benchmark {bench.name} to the column's name)"
            )


def answer_texts(value: object) -> list[str]:
    """An item's answers: a string, a list of strings (DocVQA's), or nothing."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def item_id(bench: Benchmark, row: dict, number: int) -> str:
    for column in [bench.id] if bench.id else ID_COLUMNS:
        if row.get(column) not in (None, ""):
            return str(row[column])
    return str(number)


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


class DecontamFilter(Filter):
    """Reject pairs that share a word n-gram (or a whole short question) with a benchmark item,
    and every pair of a unit with a page image near a benchmark image."""

    type: ClassVar[str] = "decontaminate"
    benchmarks: list[Benchmark] = Field(min_length=1)
    ngram: int = Field(13, ge=2, le=64, description="Words per n-gram of a long item.")
    min_item_words: int = Field(
        3,
        ge=1,
        description="A question shorter than `ngram` is matched whole from this many words.",
    )
    short_item_answer: bool = Field(
        True, description="A short item matches only with one of its answers in the pair too."
    )
    fields: Literal["question", "question_answer"] = "question_answer"
    image_distance: int = Field(
        20, ge=0, le=64, description="Max bits (of 256) between a page's hash and a benchmark's."
    )
    cache_dir: str = Field(".cache/decontam", description="Where built indexes are stored.")
    _index: DecontamIndex | None = PrivateAttr(None)
    _source: str = PrivateAttr("")

    def settings(self) -> dict:
        """What the built index depends on, besides the files' bytes."""
        benchmarks = [b.model_dump() for b in self.benchmarks]
        shape = {"ngram": self.ngram, "min_item_words": self.min_item_words}
        return {"format": INDEX_FORMAT, "benchmarks": benchmarks, **shape}

    @property
    def source(self) -> str:
        """Where this filter's index came from: 'built', 'cache file' or 'memory' ('' unloaded)."""
        return self._source

    def index(self) -> DecontamIndex:
        """The index: from this process's memory, else the cache file, else built and stored."""
        if self._index is not None:
            return self._index
        files = [f for b in self.benchmarks for f in b.files()]
        memo = file_digest(files, self.settings(), stat_only=True)
        index, self._source = _MEMO.get(memo), "memory"
        if index is None:
            cache = Path(self.cache_dir) / f"{file_digest(files, self.settings(), False)}.npz"
            index, self._source = self._cached(cache), "cache file"
            if index is None:
                index, self._source = self._build(cache), "built"
            _MEMO[memo] = index
        self._index = index
        return index

    @staticmethod
    def _cached(cache: Path) -> DecontamIndex | None:
        try:
            return DecontamIndex.from_bytes(cache.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, EOFError):  # torn or foreign: build again
            return None

    def _build(self, cache: Path) -> DecontamIndex:
        index = build_index(self.benchmarks, self.ngram, self.min_item_words)
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(cache, index.to_bytes())
        except OSError:  # a read-only cache folder: the index is rebuilt by each process
            pass
        return index

    def decide(self, pairs: list[PairContext]) -> list[Decision]:
        index = self.index()
        by_unit: dict[str, str | None] = {}
        for pair in pairs:
            if pair.unit_id not in by_unit:
                by_unit[pair.unit_id] = self._unit_image(index, pair.images)
        texts = self._text_hits(index, pairs)
        decisions = []
        for pair, text in zip(pairs, texts, strict=True):
            reason = by_unit[pair.unit_id] or text
            decisions.append(self.reject(reason) if reason else self.keep())
        return decisions

    def _unit_image(self, index: DecontamIndex, images: list[bytes]) -> str | None:
        """The reason to drop a unit for one of its page images, or None."""
        if not len(index.arrays["image_hashes"]):
            return None
        for page, data in enumerate(images):
            value = bytes_hash(data)
            near = None if value is None else index.nearest_image(value, self.image_distance)
            if near is not None:
                image, bits = near
                label = index.image_labels[image]
                return f"page image {page + 1} is {label} ({bits} of {HASH_BITS} bits apart)"
        return None

    def _pair_words(self, pair: PairContext) -> list[str]:
        if self.fields == "question":
            return words_of(pair.question)
        return words_of(pair.question) + words_of(pair.answer)

    def _text_hits(self, index: DecontamIndex, pairs: list[PairContext]) -> list[str | None]:
        """Per pair: the benchmark item it shares text with, as a reason, or None."""
        sequences = [self._pair_words(p) for p in pairs]
        lengths = index.short_lengths | ({self.ngram} if len(index.arrays["gram_keys"]) else set())
        windows = window_hashes(sequences, lengths)
        found: list[str | None] = [None] * len(pairs)
        if self.ngram in windows and len(index.arrays["gram_keys"]):
            probes, owners = windows[self.ngram]
            hit, at = matching(index.arrays["gram_keys"], probes)
            for owner, where in zip(owners[hit], at[hit], strict=True):
                if found[owner] is None:
                    item = int(index.arrays["gram_items"][where])
                    found[owner] = f"shares {self.ngram} words with {index.labels[item]}"
        for length in sorted(index.short_lengths):
            if length in windows:
                self._short_hits(index, pairs, length, windows[length], found)
        return found

    def _short_hits(self, index, pairs, length, windows, found) -> None:
        """Fill `found` for pairs holding a whole short question (and one of its answers)."""
        keys, items = index.arrays[f"short_{length}_keys"], index.arrays[f"short_{length}_items"]
        probes, owners = windows
        hit, at = matching(keys, probes)
        for owner, start in zip(owners[hit], at[hit], strict=True):
            if found[owner] is not None:
                continue
            pair_text = f" {' '.join(words_of(pairs[owner].question))} "
            pair_text += f"{' '.join(words_of(pairs[owner].answer))} "
            end = int(np.searchsorted(keys, keys[start], "right"))
            for item in map(int, items[start:end]):
                answers = index.answers.get(item) or []
                if not self.short_item_answer or not answers:
                    found[owner] = f"holds {index.labels[item]}"
                elif any(f" {a} " in pair_text for a in answers):
                    found[owner] = f"holds {index.labels[item]} with its answer"
                if found[owner] is not None:
                    break
