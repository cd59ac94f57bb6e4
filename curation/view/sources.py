"""What `curation view` reads: a finished output folder, the journal of a run in progress, or
the output folder of `curation filter`.

All are read batch by batch (never a whole dataset in memory) and only read: a running folder's
journal chunks are opened read-only and its lock is never taken, so a view can watch a run.
All give the same things: Sample rows (the shard layout), Reject and InputError rows, the
funnel, and each pair's fate (kept, or the filter that dropped it) for a comparison. A Parquet
file that cannot be read (truncated, not Parquet, a link to something else) is an error row
naming it (code `unreadable_shard`), shown with the errors; the rest of the folder is shown.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation.outdir import MARKER, TOOL, read_json
from curation.output.finished import OutputFolderError, data_files, read_manifest
from curation.output.journal import JOURNAL
from curation.output.shards import (
    DATA_DIR,
    ERRORS_DIR,
    FUNNEL_FILE,
    REJECTS_DIR,
    pair_ratings,
    parse_reject_row,
    reject_row,
    sample_row,
)
from curation.output.stats import funnel_counts, funnel_rows
from curation.schema import InputError

BATCH_ROWS = 64  # rows read at a time (with their page images)
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
# What the overview counts and a comparison need of a row `curation filter` kept: no images.
FILTERED_META = [
    "id",
    "doc_id",
    "texts",
    "qa_meta",
    "question",
    "answer",
    "prompt_id",
    "question_type",
]

log = logging.getLogger(__name__)


@dataclass
class Fate:
    """What became of one pair: `kept`, or the filter that dropped it and why."""

    qa_id: str
    fate: str
    reason: str
    question: str
    answer: str


def first_failed(pair: dict) -> dict | None:
    """The first decision that failed a pair (the one its reject names), or None: kept."""
    return next((d for d in pair.get("decisions") or [] if not d["passed"]), None)


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


class FinishedFolder:
    """The output folder of a finished run: manifest.json, data/, rejects/, errors/."""

    status = "finished"

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.manifest = read_manifest(self.out_dir)
        self.name = self.manifest.get("recipe_name") or self.out_dir.name
        self.shards = ShardReader()

    def funnel(self) -> list[tuple[str, int]]:
        return funnel_rows({"funnel": funnel_counts(self.manifest.get("counts", {}))})

    def base_counts(self) -> dict[str, Counter]:
        """Counts the manifest holds: inputs by status, units by layout."""
        counts = self.manifest.get("counts", {})
        return {
            "inputs_by_status": Counter(r["status"] for r in self.manifest.get("inputs", [])),
            "units_by_layout": Counter(counts.get("units_by_layout") or {}),
        }

    def samples(self) -> Iterator[dict]:
        """Sample rows, images included, in shard order."""
        return self.shards.rows(data_files(self.out_dir))

    def sample_meta(self) -> Iterator[dict]:
        """Sample rows without images or texts: id, doc_id, qa_meta."""
        return self.shards.rows(data_files(self.out_dir), ["id", "doc_id", "qa_meta"])

    def rejects(self) -> Iterator[dict]:
        return self.shards.rows(sorted((self.out_dir / REJECTS_DIR).glob("*.parquet")))

    def errors(self) -> Iterator[dict]:
        """The run's error rows, then one for each file this view could not read (after every
        other pass of the site, so all are known)."""
        yield from self.shards.rows(sorted((self.out_dir / ERRORS_DIR).glob("*.parquet")))
        yield from self.shards.errors()

    def fates(self) -> Iterator[Fate]:
        """Every pair's fate: the kept pairs of data/, then the rejected ones of rejects/."""
        for row in self.shards.rows(data_files(self.out_dir), ["texts", "qa_meta"]):
            yield from kept_fates(row)
        for row in self.rejects():
            found = reject_fate(row)
            if found is not None:
                yield found


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

    def add(self, row: dict) -> None:
        self.documents.add(row["source"])
        if row.get("error_code") is not None:
            self.failed.add(row["source"])
            self.errors_by_code[row["error_code"]] += 1
            return
        self.units += 1
        self.units_by_layout[row.get("layout") or "window"] += 1
        if row.get("skipped"):
            self.units_skipped[row["skipped"].split(":", 1)[0].strip()] += 1
        if row.get("parse_errors"):  # an unreadable reply: a reject, but no pair
            self.rejected_by_filter["parse"] += 1
        kept = 0
        for pair in row.get("pairs") or []:
            self.pairs_generated += 1
            failed = first_failed(pair)
            kept += failed is None
            if failed is not None:
                self.pairs_rejected += 1
                self.rejected_by_filter[failed["filter"]] += 1
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


def read_chunk(path: Path, columns: list[str] | None = None) -> Iterator[dict]:
    """The rows of one journal chunk, a slice at a time, read through a read-only memory map;
    a chunk gone meanwhile (the run finished and removed its journal) yields nothing."""
    try:
        with pa.memory_map(str(path), "r") as source:
            table = pa.ipc.open_file(source).read_all()
    except (FileNotFoundError, pa.ArrowInvalid):
        return
    if columns is not None:
        table = table.select([c for c in columns if c in table.column_names])
    for start in range(0, table.num_rows, BATCH_ROWS):
        yield from table.slice(start, BATCH_ROWS).to_pylist()


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
        for row in self.outcomes(JOURNAL_META):
            self.counts.add(row)

    def outcomes(self, columns: list[str] | None = None) -> Iterator[dict]:
        """Outcome rows in journal order, each unit once (a resumed run may repeat one)."""
        seen: set[tuple[str, str]] = set()
        for path in sorted(self.journal.glob("chunk-*.arrow")):
            for row in read_chunk(path, columns):
                key = (row["source"], row["unit_id"])
                if key not in seen:
                    seen.add(key)
                    yield row

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
        for row in self.outcomes():
            if row.get("error_code") is None:
                kept = [p for p in row.get("pairs") or [] if first_failed(p) is None]
                if kept:
                    yield sample_row(row, kept)

    def sample_meta(self) -> Iterator[dict]:
        for row in self.outcomes(JOURNAL_META):
            kept = [p for p in row.get("pairs") or [] if first_failed(p) is None]
            if row.get("error_code") is None and kept:
                meta = [
                    {
                        "prompt_id": row.get("prompt_id"),
                        "question_type": p.get("question_type"),
                        **pair_ratings(p.get("decisions") or []),
                    }
                    for p in kept
                ]
                yield {"id": row["unit_id"], "doc_id": row["doc_id"], "qa_meta": meta}

    def rejects(self) -> Iterator[dict]:
        """Reject rows (as the writer would make them): unreadable replies and failed pairs."""
        for row in self.outcomes(REJECT_COLUMNS):
            if row.get("error_code") is not None:
                continue
            unreadable = parse_reject_row(row)
            if unreadable is not None:
                yield unreadable
            for pair in row.get("pairs") or []:
                failed = first_failed(pair)
                if failed is not None:
                    yield reject_row(row, pair, failed["filter"], failed["reason"], failed["score"])

    def errors(self) -> Iterator[dict]:
        for row in self.outcomes(JOURNAL_META):
            if row.get("error_code") is not None:
                yield InputError(
                    row["doc_id"], row["source"], "ingest", row["error_code"], row["error"] or ""
                ).row()

    def fates(self) -> Iterator[Fate]:
        for row in self.outcomes(JOURNAL_META):
            for pair in row.get("pairs") or []:
                failed = first_failed(pair)
                yield Fate(
                    pair["qa_id"],
                    "kept" if failed is None else failed["filter"],
                    "" if failed is None else failed["reason"] or "",
                    pair["question"] or "",
                    pair["answer"] or "",
                )


def kept_row(row: dict, key: str) -> dict:
    """A row `curation filter` kept, in any input layout, as a Sample row: its own id or else
    `key` (its place in the shards), and one qa_meta entry per pair (empty where the row has
    none: a Docmatix row's pairs have no qa_id, so a comparison cannot match them). A flat row
    is one pair, whose qa_id is the row's id, as its rejects name it."""
    own = row.get("id")
    row_id = str(own) if own not in (None, "") else key
    if "texts" not in row:
        info = {k: row.get(k) for k in ("prompt_id", "question_type", "rationale", "model")}
        text = {"user": row.get("question"), "assistant": row.get("answer")}
        return {
            "id": row_id,
            "doc_id": row.get("doc_id"),
            "pages": row.get("pages") or [],
            "texts": [{**text, "source": row.get("source") or ""}],
            "qa_meta": [
                {
                    **info,
                    "evidence_pages": row.get("evidence_pages"),
                    "qa_id": None if row_id == key else row_id,
                }
            ],
        }
    texts, meta = row.get("texts") or [], row.get("qa_meta")
    aligned = isinstance(meta, list) and len(meta) == len(texts)
    qa_meta = [info or {} for info in meta] if aligned else [{} for _ in texts]
    return {**row, "id": row_id, "texts": texts, "qa_meta": qa_meta}


class FilteredFolder:
    """The output folder of `curation filter`: funnel.json, data/ (the kept rows, in the input's
    layout: our Sample rows, Docmatix rows of images and texts, or flat question/answer rows,
    one shard series per split) and rejects/. Each kept row is shown as one sample."""

    status = "filtered"

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.report = read_json(self.out_dir / FUNNEL_FILE)
        if self.report is None:
            raise OutputFolderError(
                f"{self.out_dir / FUNNEL_FILE}: not readable as the funnel `curation filter` "
                "writes (a JSON object); rerun the filter"
            )
        self.name = self.out_dir.name
        self.shards = ShardReader()

    def kept(self, columns: list[str] | None = None) -> Iterator[dict]:
        for path in sorted((self.out_dir / DATA_DIR).glob("*.parquet")):
            for index, row in enumerate(self.shards.rows([path], columns)):
                yield kept_row(row, f"{path.stem}:{index}")

    def funnel(self) -> list[tuple[str, int]]:
        report = self.report
        rows = [("rows in", report.get("rows_in", 0)), ("pairs in", report.get("pairs_in", 0))]
        for entry in report.get("filters") or []:
            rows.append((f"rejected by {entry.get('filter')}", entry.get("rejected", 0)))
        rows += [(f"not run (no engine): {name}", 0) for name in report.get("inactive") or []]
        rows += [
            ("pairs kept", report.get("pairs_kept", 0)),
            ("pairs rejected", report.get("pairs_rejected", 0)),
            ("rows out", report.get("rows_out", 0)),
        ]
        return rows

    def base_counts(self) -> dict[str, Counter]:
        return {}

    def samples(self) -> Iterator[dict]:
        return self.kept()

    def sample_meta(self) -> Iterator[dict]:
        return self.kept(FILTERED_META)

    def rejects(self) -> Iterator[dict]:
        return self.shards.rows(sorted((self.out_dir / REJECTS_DIR).glob("*.parquet")))

    def errors(self) -> Iterator[dict]:
        """`curation filter` writes no errors: only the files this view could not read."""
        return self.shards.errors()

    def fates(self) -> Iterator[Fate]:
        for row in self.kept(FILTERED_META):
            yield from kept_fates(row)
        for row in self.rejects():
            found = reject_fate(row)
            if found is not None:
                yield found


Source = FinishedFolder | RunningFolder | FilteredFolder


def open_source(out_dir: Path) -> Source:
    """The finished output folder, the running one (a journal, no manifest yet), or the output of
    `curation filter` (funnel.json); an OutputFolderError naming the folder when it is none."""
    out_dir = Path(out_dir)
    if (out_dir / "manifest.json").is_file():
        return FinishedFolder(out_dir)
    if (out_dir / JOURNAL).is_dir():
        return RunningFolder(out_dir)
    if (out_dir / FUNNEL_FILE).is_file():
        return FilteredFolder(out_dir)
    marker = read_json(out_dir / MARKER) or {}
    command = marker.get("command") if marker.get("tool") == TOOL else None
    if command == "export":
        raise OutputFolderError(
            f"{out_dir}: the output of `curation export` (training annotations and image files, "
            "no rejects or funnel); view the folder it was exported from instead"
        )
    if command == "filter":
        raise OutputFolderError(
            f"{out_dir}: `curation filter` has not finished writing this folder (no "
            f"{FUNNEL_FILE} yet); let it finish, or rerun it"
        )
    raise OutputFolderError(
        f"{out_dir}: not an output folder of `curation run` or `curation filter` (no "
        f"manifest.json, no {JOURNAL}/ of a run in progress, no {FUNNEL_FILE}); expected e.g. "
        "out/<recipe>"
    )
