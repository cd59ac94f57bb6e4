"""What `curation view` reads of a run in progress: the journal's chunks (Outcome rows) so far,
opened read-only through a memory map (the run's lock is never taken) and read as Outcomes,
shown as the rows the writer will make of them; the funnel is counted from the Outcomes
journaled so far.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from curation.output.journal import JOURNAL, conformed
from curation.output.shards import outcome_rejects, pair_ratings, sample_row
from curation.schema import InputError, Outcome, first_failure
from curation.view.rows import BATCH_ROWS, Fate

# The columns of a journal chunk needed for the funnel and the facets: no page images.
JOURNAL_META = [
    "unit_id",
    "doc_id",
    "source",
    "error_code",
    "error",
    "layout",
    "skipped",
    "prompt_id",
    "pairs",
    "parse_errors",
]
REJECT_COLUMNS = [*JOURNAL_META, "pages", "raw_reply"]


@dataclass
class JournalCounts:
    """The funnel of a run in progress, from the rows journaled so far."""

    documents: set[str] = field(default_factory=set)
    units: int = 0
    units_with_samples: int = 0
    pairs_generated: int = 0
    pairs_kept: int = 0
    pairs_rejected: int = 0
    rejected_by_filter: Counter = field(default_factory=Counter)
    errors_by_code: Counter = field(default_factory=Counter)
    units_skipped: Counter = field(default_factory=Counter)
    units_by_layout: Counter = field(default_factory=Counter)
    failed: set[str] = field(default_factory=set)  # sources with an error row

    def add(self, outcome: Outcome) -> None:
        unit = outcome.unit
        self.documents.add(unit.source)
        if unit.error_code is not None:
            self.failed.add(unit.source)
            self.errors_by_code[unit.error_code] += 1
            return
        self.units += 1
        self.units_by_layout[unit.layout or "window"] += 1
        if unit.skipped:
            self.units_skipped[unit.skipped.split(":", 1)[0].strip()] += 1
        if outcome.reply.parse_errors:  # an unreadable reply: a reject, but no pair
            self.rejected_by_filter["parse"] += 1
        kept = 0
        for pair in outcome.reply.pairs:
            self.pairs_generated += 1
            failed = first_failure(pair.decisions)
            kept += failed is None
            if failed is not None:
                self.pairs_rejected += 1
                self.rejected_by_filter[failed.filter] += 1
        self.pairs_kept += kept
        self.units_with_samples += kept > 0

    def funnel(self) -> list[tuple[str, int]]:
        rows = [
            ("documents started", len(self.documents)),
            ("documents failed", len(self.failed)),
            ("units", self.units),
            ("units with samples", self.units_with_samples),
            ("pairs generated", self.pairs_generated),
            ("pairs kept", self.pairs_kept),
            ("pairs rejected", self.pairs_rejected),
        ]
        rows += [(f"units skipped: {r}", n) for r, n in sorted(self.units_skipped.items())]
        for name, n in sorted(self.rejected_by_filter.items()):
            rows.append(
                ("unreadable replies (parse)" if name == "parse" else f"rejected by {name}", n)
            )
        rows += [(f"errors: {code}", n) for code, n in sorted(self.errors_by_code.items())]
        return rows


def read_chunk(path: Path, columns: list[str] | None = None) -> Iterator[Outcome]:
    """The Outcomes of one journal chunk, a slice at a time, read through a read-only memory
    map, of which only `columns` are read (the others null); a chunk gone meanwhile (the run
    finished and removed its journal) yields nothing."""
    try:
        with pa.memory_map(str(path), "r") as source:
            table = pa.ipc.open_file(source).read_all()
    except (FileNotFoundError, pa.ArrowInvalid):
        return
    table = conformed(table) if columns is None else conformed(table, columns)
    for start in range(0, table.num_rows, BATCH_ROWS):
        for row in table.slice(start, BATCH_ROWS).to_pylist():
            yield Outcome.from_row(row)


class RunningFolder:
    """A run in progress: no manifest.json yet, the journal's chunks (Outcome rows) so far.
    Kept pairs are those whose decisions all passed (the whole-dataset dedup runs only when
    the run assembles its shards)."""

    status = "running"

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.journal = self.out_dir / JOURNAL
        self.name = self.out_dir.name
        self.counts = JournalCounts()
        for outcome in self.outcomes(JOURNAL_META):
            self.counts.add(outcome)

    def outcomes(self, columns: list[str] | None = None) -> Iterator[Outcome]:
        """Outcomes in journal order, each unit once (a resumed run may repeat one)."""
        seen: set[tuple[str, str]] = set()
        for path in sorted(self.journal.glob("chunk-*.arrow")):
            for outcome in read_chunk(path, columns):
                key = (outcome.unit.source, outcome.unit.unit_id)
                if key not in seen:
                    seen.add(key)
                    yield outcome

    def funnel(self) -> list[tuple[str, int]]:
        return self.counts.funnel()

    def base_counts(self) -> dict[str, Counter]:
        statuses = Counter(
            "error" if source in self.counts.failed else "started"
            for source in self.counts.documents
        )
        return {"inputs_by_status": statuses, "units_by_layout": self.counts.units_by_layout}

    def samples(self) -> Iterator[dict]:
        """Sample rows (as the writer would make them) of the units with a kept pair."""
        for outcome in self.outcomes():
            kept = outcome.kept()
            if kept:
                yield sample_row(outcome, kept)

    def sample_meta(self) -> Iterator[dict]:
        for outcome in self.outcomes(JOURNAL_META):
            kept = outcome.kept()
            if kept:
                meta = [
                    {
                        "prompt_id": outcome.reply.prompt_id,
                        "question_type": p.question_type,
                        **pair_ratings(p.decisions),
                    }
                    for p in kept
                ]
                yield {"id": outcome.unit.unit_id, "doc_id": outcome.unit.doc_id, "qa_meta": meta}

    def rejects(self) -> Iterator[dict]:
        """Reject rows (as the writer would make them): unreadable replies and failed pairs."""
        for outcome in self.outcomes(REJECT_COLUMNS):
            if outcome.unit.error_code is None:
                yield from outcome_rejects(outcome)

    def errors(self) -> Iterator[dict]:
        for outcome in self.outcomes(JOURNAL_META):
            unit = outcome.unit
            if unit.error_code is not None:
                yield InputError(
                    unit.doc_id, unit.source, "ingest", unit.error_code, unit.error or ""
                ).row()

    def fates(self) -> Iterator[Fate]:
        for outcome in self.outcomes(JOURNAL_META):
            for pair in outcome.reply.pairs:
                failed = first_failure(pair.decisions)
                yield Fate(
                    pair.qa_id,
                    "kept" if failed is None else failed.filter,
                    "" if failed is None else failed.reason or "",
                    pair.question or "",
                    pair.answer or "",
                )
