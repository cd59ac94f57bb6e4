"""The banded Hamming search: the stored hashes within `distance` bits of a query, without
comparing the query with every one. Page dedup (64-bit page hashes, `ingest/pagedup.py`) and
benchmark decontamination (256-bit image hashes, `filters/decontam_index.py`) search this way.

A hash is cut into `distance + 1` bands of consecutive bits (more when a band would not fit a
uint64). Two hashes at most `distance` bits apart differ in at most `distance` bands, so they
agree on at least one whole band (pigeonhole): only the stored hashes equal to the query on some
band are candidates, and each candidate's exact distance is the popcount of its XOR with the
query. The bands are kept two ways: `BandArrays` for a fixed set held as a uint64 array (each
band's values sorted, looked up by binary search: compact, made in one numpy pass), and
`BandBuckets` for a set that grows one hash at a time (each band a dict of value -> entries).
`sorted_pairs` and `matching` are the exact lookup in sorted keys that decontamination's word
n-grams use as well.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


def band_layout(bits: int, distance: int) -> list[tuple[int, int]]:
    """(first bit, width) of the bands of a `bits`-bit hash for a search within `distance`:
    `distance + 1` bands (at least one per 64 bits, so a band fits a uint64) of near-equal
    width, the first `bits % count` of them one bit wider."""
    count = max(distance + 1, -(-bits // 64))
    layout, start = [], 0
    for k in range(count):
        width = bits // count + (1 if k < bits % count else 0)
        layout.append((start, width))
        start += width
    return layout


def band_key(value: int, start: int, width: int) -> int:
    """Bits `start` to `start + width` of a hash held as an int."""
    return (value >> start) & ((1 << width) - 1)


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


def hash_int(value: np.ndarray) -> int:
    """A hash's words as one int, bit b of the hash being bit b of the int."""
    return sum(int(word) << (64 * k) for k, word in enumerate(value))


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


class BandArrays:
    """A fixed set of hashes (an (n, words) uint64 array) sorted by each band: `bands` holds
    (first bit, width, sorted band values in a uint16/32/64 array, their rows as int32)."""

    def __init__(self, hashes: np.ndarray, distance: int) -> None:
        self.hashes, self.distance = hashes, distance
        self.bands: list[tuple[int, int, np.ndarray, np.ndarray]] = []
        for start, width in band_layout(64 * hashes.shape[1], distance):
            values = band_values(hashes, start, width)
            order = np.argsort(values, kind="stable").astype(np.int32)
            self.bands.append((start, width, values[order], order))

    def candidates(self, value: np.ndarray) -> np.ndarray:
        """The rows equal to `value` on at least one band, a row once per band it shares: a
        superset of those within `distance` bits, band by band, in row order within a band."""
        number, found = hash_int(value), []
        for start, width, values, order in self.bands:
            key = values.dtype.type(band_key(number, start, width))
            lo, hi = values.searchsorted(key, "left"), values.searchsorted(key, "right")
            if hi > lo:
                found.append(order[lo:hi])
        return np.concatenate(found) if found else np.zeros(0, np.int32)

    def nearest(self, value: np.ndarray) -> tuple[int, int] | None:
        """(row, bits apart) of the closest hash within `distance` (the first candidate of the
        fewest bits), or None."""
        found = self.candidates(value)
        if not len(found):
            return None
        bits = popcount(self.hashes.take(found, axis=0) ^ value)
        best = int(np.argmin(bits))
        return (int(found[best]), int(bits[best])) if bits[best] <= self.distance else None


class BandBuckets(Generic[T]):
    """A growing set of int hashes, each with an entry, bucketed by each band's value."""

    def __init__(self, bits: int, distance: int) -> None:
        self.distance = distance
        self.layout = band_layout(bits, distance)
        self.buckets: dict[tuple[int, int], list[tuple[int, T]]] = {}

    def add(self, value: int, entry: T) -> None:
        for key in self._keys(value):
            self.buckets.setdefault(key, []).append((value, entry))

    def near(self, value: int) -> list[T]:
        """The entries of the hashes within `distance` bits of `value` (one once per band it
        shares with `value`)."""
        return [
            entry
            for key in self._keys(value)
            for stored, entry in self.buckets.get(key, ())
            if (stored ^ value).bit_count() <= self.distance
        ]

    def _keys(self, value: int) -> list[tuple[int, int]]:
        return [(n, band_key(value, start, width)) for n, (start, width) in enumerate(self.layout)]
