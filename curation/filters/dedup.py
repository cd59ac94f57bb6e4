"""Duplicates: exact (hash of the case-folded words) and near (MinHash over word 5-grams with LSH).

Signatures are datasketch's (scheme affine32, the 2.0 default: SHA-1 of each shingle, the
MurmurHash3 finalizer, then `a * h + b mod 2^32` with datasketch's seeded permutations), so they
can go into a datasketch `MinHashLSH`; they are computed for many texts at once with numpy
instead of one `update` call per shingle.

Two pairs are near-duplicates when they share an LSH band and their signatures agree on at least
`threshold` of the hash values (the estimated Jaccard similarity of their shingle sets). Of a
set of duplicates the first one (in feeding order, or by id) is kept; each later one names the
earliest pair it duplicates.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import Field

from curation.filters.base import Filter
from curation.schema import Decision, Pair
from curation.tokens import normalize_text, plain_words

if TYPE_CHECKING:
    from datasketch import MinHash

SCHEME = "affine32"
DEDUP_STAGING = ".dedup"  # where a dedup in Ray stages its pairs (removed once it is done)
MAX_HASH = np.uint32(0xFFFFFFFF)
CHUNK_SHINGLES = 8192  # rows of the (shingles x permutations) matrix computed at once


# A label or number a model put before a question or an answer ("B1:", "C1:", "**Q3:**", "2.",
# "(3)", "Question 4:"): its numbering, not its text. A quarter's "Q3:" before a statement is
# stripped too, harmlessly: two pairs then differ in their questions.
PREFIX = re.compile(
    r"^[\W_]*(?:(?:question|answer|q|a)\s*\d*\s*[:.)]|[A-Z]\d{1,2}\s*[:.)]|\(?\d{1,3}[.)])(?!\d)"
    r"[\W_]*(?=\w)",
    re.IGNORECASE,
)


def without_prefix(text: str) -> str:
    """The text without the reply label or number a model put before it."""
    return PREFIX.sub("", text, count=1)


def pair_text(question: str, answer: str) -> str:
    """The text a question-answer pair is deduplicated on: its question and answer without the
    labels or numbers before them, so pairs that differ only in those are duplicates."""
    return f"{without_prefix(question)}\n{without_prefix(answer)}"


def shingles(text: str, ngram: int = 5) -> list[bytes]:
    """Word n-grams of the case-folded text; a text shorter than n words is one shingle."""
    words = plain_words(text)
    if len(words) <= ngram:
        return [" ".join(words).encode()] if words else []
    return [" ".join(words[i : i + ngram]).encode() for i in range(len(words) - ngram + 1)]


def occurrence_keys(keys: list[str]) -> list[str]:
    """The keys made distinct in order: a key's second occurrence becomes `key#2`, and so on.

    Two identical pairs of one unit share their content-hash id; they are two pairs (the later a
    duplicate of the first), not one pair fed twice.
    """
    taken: set[str] = set()
    distinct = []
    for key in keys:
        unique, n = key, 1
        while unique in taken:
            n += 1
            unique = f"{key}#{n}"
        taken.add(unique)
        distinct.append(unique)
    return distinct


def exact_key(text: str) -> bytes:
    """A hash of the text's words, case-folded: case, spacing and punctuation do not count."""
    return hashlib.blake2b(normalize_text(text).encode(), digest_size=16).digest()


def _fmix32(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer (datasketch applies it before the permutations)."""
    values = values ^ (values >> np.uint32(16))
    values = values * np.uint32(0x85EBCA6B)
    values = values ^ (values >> np.uint32(13))
    values = values * np.uint32(0xC2B2AE35)
    return values ^ (values >> np.uint32(16))


class MinHasher:
    """MinHash signatures of many texts at once, equal to datasketch's `MinHash.update_batch`."""

    def __init__(self, num_perm: int = 128, seed: int = 1, ngram: int = 5) -> None:
        self.num_perm, self.seed, self.ngram = num_perm, seed, ngram
        # datasketch's own seeded parameters, so signatures match its MinHash exactly. (It is
        # imported where used: with scipy it costs 0.6 s in every Ray worker that imports a chain.)
        from datasketch import MinHash

        self.permutations = MinHash(num_perm=num_perm, seed=seed, scheme=SCHEME).permutations
        self._a = self.permutations[0][np.newaxis, :]
        self._b = self.permutations[1][np.newaxis, :]

    def signatures(self, texts: list[str]) -> np.ndarray:
        """A (texts x num_perm) uint32 array; an empty text gets the all-maximum signature."""
        shingle_lists = [shingles(text, self.ngram) for text in texts]
        counts = np.fromiter(map(len, shingle_lists), dtype=np.int64, count=len(texts))
        out = np.full((len(texts), self.num_perm), MAX_HASH, dtype=np.uint32)
        flat = [s for group in shingle_lists for s in group]
        if not flat:
            return out
        digests = b"".join([hashlib.sha1(s).digest()[:4] for s in flat])
        hashes = _fmix32(np.frombuffer(digests, dtype="<u4").astype(np.uint32))
        ends = np.cumsum(counts).tolist()
        chunk_start = 0
        # One (shingles x permutations) matrix per chunk of shingles keeps memory flat; a text
        # may span two chunks. A slice minimum per text is far faster than np.minimum.reduceat
        # along axis 0.
        while chunk_start < len(flat):
            permuted = hashes[chunk_start : chunk_start + CHUNK_SHINGLES, np.newaxis] * self._a
            permuted += self._b
            chunk_end = chunk_start + len(permuted)
            first = bisect_right(ends, chunk_start)
            start = chunk_start
            for index in range(first, len(texts)):
                end = min(ends[index], chunk_end)
                if end > start:
                    low = permuted[start - chunk_start : end - chunk_start].min(axis=0)
                    np.minimum(out[index], low, out=out[index])
                start = end
                if end == chunk_end:
                    break
            chunk_start = chunk_end
        return out

    def minhash(self, signature: np.ndarray) -> MinHash:
        """A datasketch MinHash holding a signature (for a datasketch index)."""
        from datasketch import MinHash

        return MinHash(
            seed=self.seed, hashvalues=signature, permutations=self.permutations, scheme=SCHEME
        )


def lsh_bands(threshold: float, num_perm: int) -> list[tuple[int, int]]:
    """The (start, end) hash ranges of datasketch's LSH bands for this threshold."""
    from datasketch import MinHashLSH

    return list(MinHashLSH(threshold=threshold, num_perm=num_perm).hashranges)


@dataclass
class Verdict:
    """Whether a text duplicates an earlier one, which, and how similar they are."""

    is_duplicate: bool
    duplicate_of: str | None = None
    similarity: float | None = None
    kind: str = ""  # exact | near


class Deduplicator:
    """Streaming duplicate finder: feed texts in a fixed order; each is checked against all
    earlier ones (duplicates included) and then indexed. Keys must be unique (two identical
    pairs of one unit share a content-hash id: number them with `occurrence_keys`); a key seen
    in an earlier call gets its first verdict back, so replaying a prefix changes nothing.

    Memory: one signature (num_perm x 4 bytes) and its LSH band keys per text.
    """

    def __init__(
        self,
        exact: bool = True,
        near: bool = True,
        threshold: float = 0.8,
        num_perm: int = 128,
        ngram: int = 5,
        seed: int = 1,
    ) -> None:
        self.exact, self.near, self.threshold = exact, near, threshold
        from datasketch import MinHashLSH

        self.hasher = MinHasher(num_perm, seed, ngram)
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.first_by_text: dict[bytes, str] = {}
        self.order: dict[str, int] = {}
        self.signatures: dict[str, np.ndarray] = {}
        self.verdicts: dict[str, Verdict] = {}

    def seen(self, pair_text: str, key: str) -> tuple[bool, str | None]:
        """(is it a duplicate of an earlier text, the earliest such text's key)."""
        verdict = self.check([pair_text], [key])[0]
        return verdict.is_duplicate, verdict.duplicate_of

    def check(self, texts: list[str], keys: list[str]) -> list[Verdict]:
        """Verdicts for texts in order, each against everything before it (batched hashing)."""
        if len(set(keys)) < len(keys):
            repeated = next(key for key in keys if keys.count(key) > 1)
            raise ValueError(
                f"key {repeated!r} twice in one check: number repeats with occurrence_keys"
            )
        fresh = [i for i, key in enumerate(keys) if key not in self.order]
        signatures = (
            self.hasher.signatures([texts[i] for i in fresh])
            if self.near and fresh
            else [None] * len(fresh)
        )
        verdicts = {
            i: self._add(texts[i], keys[i], signature)
            for i, signature in zip(fresh, signatures, strict=True)
        }
        return [
            verdicts.get(i) or self.verdicts.get(key, Verdict(False)) for i, key in enumerate(keys)
        ]

    def _add(self, text: str, key: str, signature: np.ndarray | None) -> Verdict:
        matches: list[Verdict] = []
        if self.exact:
            first = self.first_by_text.setdefault(exact_key(text), key)
            if first != key:
                matches.append(Verdict(True, first, 1.0, "exact"))
        if signature is not None:
            minhash = self.hasher.minhash(signature)
            for other in self.lsh.query(minhash):
                similarity = float(np.mean(self.signatures[other] == signature))
                if similarity >= self.threshold:
                    matches.append(Verdict(True, other, similarity, "near"))
            self.lsh.insert(key, minhash, check_duplication=False)
            self.signatures[key] = signature
        self.order[key] = len(self.order)
        if not matches:
            return Verdict(False)
        # The earliest match; of two with the same text, the exact one (listed first).
        verdict = min(matches, key=lambda m: (self.order[m.duplicate_of], -m.similarity))
        self.verdicts[key] = verdict
        return verdict


class DedupFilter(Filter):
    """Reject a pair that duplicates an earlier one (question + answer), exactly or nearly.

    A chain's `dedup:` key, not one of its filters: it runs after them all, over the whole
    dataset, never within a batch: the run's assembly and `curation filter` feed one
    `Deduplicator` (see `deduplicator`) the kept pairs in dataset order. `decide` dedups the
    pairs it is given among themselves. Defaults:
    word 5-grams, 128 permutations, Jaccard 0.8 (DataTrove uses 5-grams and about 0.72,
    distilabel 128 permutations and 0.9).
    """

    type: ClassVar[str] = "dedup"
    backend: Literal["auto", "memory", "ray"] = Field(
        "auto",
        description="Where the whole-dataset dedup (of a run, or of `curation filter`) looks "
        "for duplicates: one in-memory index in the driver (about 5 KB per pair), or Ray groups "
        "by LSH band (`ray_near_duplicates`); 'auto' takes Ray above `ray_above_pairs` (a run "
        "counts its pairs, `curation filter` its input rows). Same verdicts either way.",
    )
    ray_above_pairs: int = Field(
        1_000_000, ge=0, description="With backend 'auto': more pairs than this go to Ray."
    )
    exact: bool = True
    near: bool = True
    threshold: float = Field(0.8, gt=0, le=1)
    num_perm: int = Field(128, ge=16, le=1024)
    ngram: int = Field(5, ge=1, le=50)
    seed: int = 1

    def in_ray(self, pairs: int) -> bool:
        """Whether a run with this many pairs to check dedups in Ray (exact-only stays in
        memory: a 16-byte key per pair)."""
        if not self.near or self.backend == "memory":
            return False
        return self.backend == "ray" or pairs > self.ray_above_pairs

    def deduplicator(self) -> Deduplicator:
        """A fresh streaming Deduplicator with this filter's settings."""
        return Deduplicator(
            self.exact, self.near, self.threshold, self.num_perm, self.ngram, self.seed
        )

    def decide(self, pairs: list[Pair]) -> list[Decision]:
        keys = occurrence_keys(
            [pair.qa_id or f"{pair.unit.unit_id}#{i}" for i, pair in enumerate(pairs)]
        )
        texts = [pair_text(pair.question, pair.answer) for pair in pairs]
        return [self.decision(v) for v in self.deduplicator().check(texts, keys)]

    def decision(self, verdict: Verdict) -> Decision:
        """The Decision for a Deduplicator verdict."""
        if not verdict.is_duplicate:
            return self.keep()
        return self.reject(
            f"{verdict.kind} duplicate of {verdict.duplicate_of} "
            f"(similarity {verdict.similarity:.2f})",
            verdict.similarity,
        )


class KnownVerdicts:
    """Verdicts found beforehand (by `ray_near_duplicates`), answered with the `check`
    interface of a Deduplicator: a key not found is not a duplicate."""

    def __init__(self, verdicts: dict[str, Verdict]) -> None:
        self.verdicts = verdicts

    def check(self, texts: list[str], keys: list[str]) -> list[Verdict]:
        return [self.verdicts.get(key, Verdict(False)) for key in keys]
