"""The run journal: what a run has finished, kept on disk so a killed run resumes exactly.

Every batch of Outcome rows that reaches the driver is appended as one Arrow IPC file, written
to a temporary name, fsynced and renamed, so a file in the journal is always whole. A rerun with
the same recipe reads the journal, skips the documents and units already there, and at the end
the dataset is assembled from the journal in input order — the same bytes whether or not the
run was interrupted. The journal is deleted once the dataset is in place.

A document is known by its source and its content (`doc_id`, a hash of its bytes): rows of a
file that changed since they were written, or that is no longer among the inputs, are dropped
from the journal when a run resumes, so a changed file is ingested again.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pyarrow as pa

from curation.files import write_atomic
from curation.schema import OUTCOME_SCHEMA, Outcome, first_failure

JOURNAL = ".journal"
# The journal's row format (OUTCOME_SCHEMA); a journal of another format is started over.
# 2: decisions carry a judge's per-axis ratings.
JOURNAL_FORMAT = 2
# The columns the journal keeps track of (documents done, progress figures).
TRACKED = ["unit_id", "source", "doc_units", "error_code", "pairs", "parse_errors"]


@dataclass
class Progress:
    """Live figures of a run, for the progress display."""

    documents: int = 0
    documents_done: int = 0
    units: int = 0
    pairs_kept: int = 0
    pairs_rejected: int = 0
    errors: int = 0
    resumed_units: int = 0
    waiting: str | None = None  # the stage a stalled run waits for (see curation.watchdog)
    restarted: str | None = None  # why an interrupted run's journal was discarded
    changed: list[str] = field(default_factory=list)  # inputs whose bytes changed: ingested again
    removed: list[str] = field(default_factory=list)  # journaled inputs no longer among the inputs


@dataclass
class DocumentState:
    units: set[str] = field(default_factory=set)
    expected: int | None = None  # doc_units, once a unit row has been seen
    failed: bool = False  # an error row ends its document

    @property
    def done(self) -> bool:
        return self.failed or (self.expected is not None and len(self.units) >= self.expected)


class Journal:
    """Append-only record of finished Outcome rows for one output folder and one recipe.

    `current_id(source)` gives the doc_id an input has now; journaled rows of another doc_id
    are dropped (see `drop_stale`)."""

    def __init__(
        self,
        out_dir: Path,
        recipe_hash: str,
        inputs: list[str],
        current_id: Callable[[str], str],
    ) -> None:
        self.folder = out_dir / JOURNAL
        self.recipe_hash = recipe_hash
        self.order = {source: index for index, source in enumerate(inputs)}
        self.documents: dict[str, DocumentState] = {}
        self.progress = Progress(documents=len(inputs))
        header = self.folder / "run.json"
        if header.exists():
            try:
                previous = json.loads(header.read_text())
            except ValueError:
                previous = {}
            if previous.get("format", 1) != JOURNAL_FORMAT:
                self.progress.restarted = (
                    "the interrupted run was journaled by another version of curation (its row "
                    "format differs), so its work cannot be mixed into this one"
                )
            elif previous.get("recipe_hash") != recipe_hash:
                self.progress.restarted = (
                    "the recipe, its filter chain or its prompts changed since the interrupted run"
                )
            if self.progress.restarted:
                shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(
            header, json.dumps({"recipe_hash": recipe_hash, "format": JOURNAL_FORMAT}).encode()
        )
        self.chunks = sorted(self.folder.glob("chunk-*.arrow"))
        self.drop_stale(current_id)
        for path in self.chunks:
            self._record(_read_rows(path, TRACKED))
        self._count_documents_done()
        self.progress.resumed_units = sum(len(d.units) for d in self.documents.values())
        self.resumed = bool(self.chunks)  # this run continues an interrupted one

    def drop_stale(self, current_id: Callable[[str], str]) -> None:
        """Remove the rows of inputs that changed or left since they were journaled; their
        sources go to `progress.changed` and `progress.removed`. A chunk left without rows
        stays (empty), so the numbering of new chunks never meets an old name."""
        journaled: dict[str, set[str]] = {}
        for path in self.chunks:
            for row in _read_rows(path, ["source", "doc_id"]):
                journaled.setdefault(row["source"], set()).add(row["doc_id"])
        removed = sorted(source for source in journaled if source not in self.order)
        changed = [
            source
            for source in sorted(journaled, key=lambda s: self.order.get(s, -1))
            if source in self.order and journaled[source] != {current_id(source)}
        ]
        self.progress.changed, self.progress.removed = changed, removed
        stale = set(changed) | set(removed)
        if not stale:
            return
        for path in self.chunks:
            table = _read_table(path)
            keep = pa.array(
                [source not in stale for source in table["source"].to_pylist()], pa.bool_()
            )
            if keep.true_count < table.num_rows:
                _write_chunk(path, table.filter(keep))

    def _record(self, rows: list[dict]) -> None:
        for row in rows:
            self._track(row)
            self._count_row(row)

    def _track(self, row: dict) -> None:
        state = self.documents.setdefault(row["source"], DocumentState())
        if row["error_code"] is not None:
            state.failed = True
        else:
            state.units.add(row["unit_id"])
            state.expected = row["doc_units"]

    def _count_row(self, row: dict) -> None:
        p = self.progress
        if row["error_code"] is not None:
            p.errors += 1
            return
        p.units += 1
        p.pairs_rejected += int(bool(row["parse_errors"]))
        for pair in row["pairs"]:
            passed = first_failure(pair["decisions"]) is None
            p.pairs_kept += int(passed)
            p.pairs_rejected += int(not passed)

    def documents_done(self) -> set[str]:
        return {source for source, state in self.documents.items() if state.done}

    def units_done(self) -> set[str]:
        """Units of documents that are only partly done (finished documents are skipped whole)."""
        return {unit for state in self.documents.values() if not state.done for unit in state.units}

    def append(self, batch: pa.Table) -> None:
        """Record a batch of Outcome rows durably."""
        if batch.num_rows == 0:
            return
        path = self.folder / f"chunk-{len(self.chunks):06d}.arrow"
        _write_chunk(path, batch)
        self.chunks.append(path)
        self._record(batch.select(TRACKED).to_pylist())
        self._count_documents_done()

    def _count_documents_done(self) -> None:
        self.progress.documents_done = sum(
            state.done for source, state in self.documents.items() if source in self.order
        )

    def outcomes(self) -> Iterator[Outcome]:
        """Every recorded Outcome of the current inputs, in input order and page order, each
        unit once; reading one chunk at a time (its rows become records here, as read)."""
        index = []
        seen: set[tuple[str, str]] = set()
        for chunk_no, path in enumerate(self.chunks):
            keys = _read_rows(path, ["source", "unit_id", "pages", "error_code"])
            for row_no, row in enumerate(keys):
                key = (row["source"], row["unit_id"])
                if row["source"] not in self.order or key in seen:
                    continue
                seen.add(key)
                failed = row["error_code"] is not None
                first = row["pages"][0] if row["pages"] else 0
                index.append((self.order[row["source"]], failed, first, chunk_no, row_no))
        index.sort()
        # Mostly sequential: only the units of documents split by an interruption jump back.
        rows = lru_cache(maxsize=4)(lambda chunk_no: _read_rows(self.chunks[chunk_no]))
        for *_, chunk_no, row_no in index:
            yield Outcome.from_row(rows(chunk_no)[row_no])

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _write_chunk(path: Path, table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, OUTCOME_SCHEMA) as writer:
        writer.write_table(table.cast(OUTCOME_SCHEMA))
    write_atomic(path, sink.getvalue().to_pybytes())


def _read_table(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        return conformed(pa.ipc.open_file(source).read_all())


def conformed(table: pa.Table, columns: Iterable[str] = OUTCOME_SCHEMA.names) -> pa.Table:
    """A chunk as OUTCOME_SCHEMA rows, of which only `columns` are read (the others null: a
    reader that needs no page images leaves them in the file). A chunk written before fields
    were added to the schema (same format, fewer fields) reads with those fields null, so its
    work is kept."""
    wanted = set(columns)
    if wanted.issuperset(OUTCOME_SCHEMA.names) and table.schema.equals(OUTCOME_SCHEMA):
        return table
    arrays = []
    for column in OUTCOME_SCHEMA:
        if column.name not in wanted or column.name not in table.column_names:
            arrays.append(pa.nulls(table.num_rows, column.type))
        elif table.schema.field(column.name).type.equals(column.type):
            arrays.append(table[column.name])
        else:  # a nested field added since: the old values, with it null
            arrays.append(pa.array(table[column.name].to_pylist(), column.type))
    return pa.Table.from_arrays(arrays, schema=OUTCOME_SCHEMA)


def _read_rows(path: Path, columns: list[str] | None = None) -> list[dict]:
    table = _read_table(path)
    return (table.select(columns) if columns else table).to_pylist()
