"""The pieces every kind of folder `curation view` reads is made of: Parquet files read a batch
at a time, a file that cannot be read becoming an error row naming it (`ShardReader`), and what
became of each pair, kept or dropped by a filter (`Fate`), for a comparison of two folders.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation.schema import InputError

BATCH_ROWS = 64  # rows read at a time (with their page images)

log = logging.getLogger(__name__)


@dataclass
class Fate:
    """What became of one pair: `kept`, or the filter that dropped it and why."""

    qa_id: str
    fate: str
    reason: str
    question: str
    answer: str


def kept_fates(row: dict) -> Iterator[Fate]:
    """The fates of a Sample row's pairs: all kept."""
    for text, meta in zip(row["texts"] or [], row["qa_meta"] or [], strict=False):
        if meta.get("qa_id"):
            yield Fate(meta["qa_id"], "kept", "", text["user"] or "", text["assistant"] or "")


def reject_fate(row: dict) -> Fate | None:
    """The fate of a Reject row's pair; None for an unreadable reply (no pair)."""
    if not row.get("qa_id"):
        return None
    return Fate(
        row["qa_id"], row["filter"], row["reason"] or "", row["question"] or "", row["answer"] or ""
    )


class ShardReader:
    """Reads the rows of Parquet files in order, a batch at a time. A file that cannot be read
    is left from where it failed, and every later pass skips it; `errors` gives a row naming
    each such file."""

    def __init__(self) -> None:
        self.broken: dict[Path, str] = {}  # file -> why it cannot be read

    def rows(self, paths: list[Path], columns: list[str] | None = None) -> Iterator[dict]:
        for path in paths:
            if path in self.broken:
                continue
            try:
                shard = pq.ParquetFile(path)
                names = shard.schema_arrow.names
                wanted = None if columns is None else [c for c in columns if c in names]
                for batch in shard.iter_batches(batch_size=BATCH_ROWS, columns=wanted):
                    yield from batch.to_pylist()
            except (OSError, pa.ArrowException) as exc:  # truncated, not Parquet, gone
                self.broken[path] = f"not a readable Parquet file: {exc}"
                log.warning("%s: %s (listed with the errors)", path, self.broken[path])

    def errors(self) -> Iterator[dict]:
        for path, message in self.broken.items():
            yield InputError(None, str(path), "view", "unreadable_shard", message).row()
