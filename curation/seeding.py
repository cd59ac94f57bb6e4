"""Deterministic randomness: every choice is derived from the recipe seed and a record id."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def stable_hash(*parts: object) -> int:
    """A 64-bit integer from the parts, the same on every machine and run."""
    blob = "\x1f".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")


def stable_fraction(*parts: object) -> float:
    """A number in [0, 1) from the parts, the same on every machine and run."""
    return stable_hash(*parts) / 2**64


def weighted_pick(choices: list[tuple[T, float]], *parts: object) -> T:
    """One of `choices` ((item, weight) pairs, a positive total), drawn in proportion to the
    weights by the stable fraction of `parts`: the same pick on every machine and run."""
    point = stable_fraction(*parts) * sum(w for _, w in choices)
    for item, weight in choices:
        if point < weight:
            return item
        point -= weight
    return choices[-1][0]


def content_id(*parts: object, length: int = 16) -> str:
    """A hex content hash of the parts (a file name that is not UTF-8 by its real bytes)."""
    blob = "\x1f".join(str(part) for part in parts).encode("utf-8", "surrogateescape")
    return hashlib.sha256(blob).hexdigest()[:length]


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
