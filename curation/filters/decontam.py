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
different text pages of a similar layout are often 0-2 bits apart), found through the banded
Hamming search of `curation.hamming`: split in `image_distance + 1` bands, a hash within that
distance equals a benchmark hash on at least one band (pigeonhole), and only those candidates
get the exact bit count.

The index is built once: on the first `decide`, stored under `cache_dir` as an .npz file named
by the sha256 of the benchmark files' bytes and the settings that shape it (written atomically),
so every other worker process loads it instead; a process keeps the loaded index in memory too.
Benchmark text is data: it is tokenized and hashed, never evaluated or rendered.

This module is the filter; the `Benchmark` setting and its readers are `decontam_benchmarks.py`,
the word and image hashes `decontam_hashes.py`, the index and its build `decontam_index.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, PrivateAttr

from curation.files import write_atomic
from curation.filters.base import Filter
from curation.filters.decontam_benchmarks import Benchmark
from curation.filters.decontam_hashes import HASH_BITS, bytes_hash, window_hashes, words_of
from curation.filters.decontam_index import INDEX_FORMAT, DecontamIndex, build_index, file_digest
from curation.hamming import matching
from curation.schema import Decision, Pair

_MEMO: dict[str, DecontamIndex] = {}  # loaded indexes of this process, by files' stat + settings


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

    def decide(self, pairs: list[Pair]) -> list[Decision]:
        index = self.index()
        by_unit: dict[str, str | None] = {}
        for pair in pairs:
            if pair.unit.unit_id not in by_unit:
                by_unit[pair.unit.unit_id] = self._unit_image(index, pair.unit.images)
        texts = self._text_hits(index, pairs)
        decisions = []
        for pair, text in zip(pairs, texts, strict=True):
            reason = by_unit[pair.unit.unit_id] or text
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

    def _pair_words(self, pair: Pair) -> list[str]:
        if self.fields == "question":
            return words_of(pair.question)
        return words_of(pair.question) + words_of(pair.answer)

    def _text_hits(self, index: DecontamIndex, pairs: list[Pair]) -> list[str | None]:
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
