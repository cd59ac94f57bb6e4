"""Assemble and write: Outcomes -> Sample shards, rejects, errors, and the manifest."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation.schema import (
    ERROR_SCHEMA,
    REJECT_SCHEMA,
    SAMPLE_SCHEMA,
    Decision,
    InputError,
    Outcome,
    Pair,
    Reject,
    Unit,
    first_failure,
)
from curation.seeding import file_sha256

DATA_DIR, REJECTS_DIR, ERRORS_DIR = "data", "rejects", "errors"
FUNNEL_FILE = "funnel.json"  # what `curation filter` kept and dropped, per filter
STAGING = ".staging"
# The names ShardSink gives its files, finished (HF style) or in progress.
SHARD_NAME = re.compile(r"(.+-\d{5}-of-\d{5}|\.part-\d{5})\.parquet")
# Fault injection for the kill-and-resume tests: seconds to pause after each shard file.
WRITE_DELAY_ENV = "CURATION_TEST_WRITE_DELAY_S"
# A shard's row groups: about this many bytes of rows each (a few dozen page images), so that
# a reader streaming the shard, and the writer, hold one group in memory and not the file.
GROUP_BYTES = 32 * 2**20


class ShardSink:
    """Rows of one schema written as numbered Parquet files of at most `rows_per_file` rows
    (and about `bytes_per_file`, when given). With `bytes_per_file`, rows are sized, and they go
    to the open file in row groups of about `group_bytes` as they come, so a shard's images are
    never all in memory at once; without it (rejects, errors, `curation filter`'s sinks), rows
    are not sized and a file is written in one group when it is full or closed."""

    def __init__(
        self,
        folder: Path,
        prefix: str,
        schema: pa.Schema,
        rows_per_file: int,
        bytes_per_file: float = float("inf"),
        group_bytes: float = GROUP_BYTES,
    ) -> None:
        self.folder, self.prefix, self.schema = folder, prefix, schema
        self.rows_per_file = rows_per_file
        self.bytes_per_file = bytes_per_file
        self.group_bytes = group_bytes
        self.pending: list[dict] = []
        self.pending_bytes = 0
        self.file: tuple[Path, pq.ParquetWriter] | None = None  # the open part
        self.file_rows = 0
        self.file_bytes = 0
        self.parts: list[tuple[Path, int]] = []
        self.delay_s = float(os.environ.get(WRITE_DELAY_ENV, "0"))  # 0 outside the resume test
        # Binary columns hold the page images, compressed already and each one unique: a
        # dictionary of them and Snappy over them cost a copy and a pass over every byte and
        # saved nothing. Every other column keeps Parquet's defaults.
        leaves = leaf_columns(schema)
        binary = {name for name, kind in leaves.items() if pa.types.is_binary(kind)}
        self.parquet_options = {
            "use_dictionary": [name for name in leaves if name not in binary],
            "compression": {name: "none" if name in binary else "snappy" for name in leaves},
        }

    def add(self, row: dict) -> None:
        self.pending.append(row)
        if self.bytes_per_file != float("inf"):  # sizing a row costs a walk over all its values
            self.pending_bytes += row_size(row)
        rows, size = self.file_rows + len(self.pending), self.file_bytes + self.pending_bytes
        if rows >= self.rows_per_file or size >= self.bytes_per_file:
            self.flush()
        elif self.pending_bytes >= self.group_bytes:
            self.write_group()

    def write_group(self) -> None:
        """The pending rows as a row group of the open part (opened here if none is)."""
        if not self.pending:
            return
        if self.file is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f".part-{len(self.parts):05d}.parquet"
            self.file = path, pq.ParquetWriter(path, self.schema, **self.parquet_options)
        self.file[1].write_table(pa.Table.from_pylist(self.pending, schema=self.schema))
        self.file_rows += len(self.pending)
        self.file_bytes += self.pending_bytes
        self.pending = []
        self.pending_bytes = 0

    def flush(self) -> None:
        """Write the pending rows and finish the open part."""
        self.write_group()
        if self.file is None:
            return
        path, writer = self.file
        writer.close()
        self.parts.append((path, self.file_rows))
        self.file, self.file_rows, self.file_bytes = None, 0, 0
        if self.delay_s:
            time.sleep(self.delay_s)

    def close(self) -> list[dict]:
        """Give the parts their final HF-style names; one entry (path, rows, sha256) per file."""
        self.flush()
        total = len(self.parts)
        written = []
        for index, (part, rows) in enumerate(self.parts):
            final = part.with_name(f"{self.prefix}-{index:05d}-of-{total:05d}.parquet")
            part.rename(final)
            written.append({"file": final.name, "rows": rows, "sha256": file_sha256(final)})
        return written


def leaf_columns(schema: pa.Schema) -> dict[str, pa.DataType]:
    """The schema's leaf columns by Parquet's name for them (`images.list.element.bytes`)."""

    def walk(name: str, kind: pa.DataType) -> Iterator[tuple[str, pa.DataType]]:
        if pa.types.is_list(kind):
            yield from walk(f"{name}.list.element", kind.value_type)
        elif pa.types.is_struct(kind):
            for child in kind:
                yield from walk(f"{name}.{child.name}", child.type)
        else:
            yield name, kind

    return dict(leaf for field in schema for leaf in walk(field.name, field.type))


def row_size(value: object) -> int:
    """Roughly the bytes a row takes in Parquet (images dominate; they are stored as is)."""
    if isinstance(value, bytes | str):
        return len(value)
    if isinstance(value, dict):
        return sum(row_size(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(row_size(v) for v in value)
    return 8


@dataclass
class InputRecord:
    """What became of one input file."""

    path: str
    doc_id: str | None = None
    status: str = "missing"  # ok | partial | error | duplicate | missing
    pages: int = 0
    units: int = 0
    pairs_generated: int = 0
    pairs_kept: int = 0
    last_page: int = -1
    errors: list[dict] = field(default_factory=list)


@dataclass
class RunCounts:
    """The funnel: how many of each thing went in and what became of it."""

    documents: int = 0  # every input: read, or an error row (a FIFO, a missing name...)
    inputs_cut_by_limit: int = 0  # documents `--limit` left out of the run
    pages: int = 0
    units: int = 0
    units_with_samples: int = 0
    pairs_generated: int = 0
    pairs_kept: int = 0
    pairs_rejected: int = 0
    completion_tokens: int = 0
    prompt_tokens: int = 0  # as the engines counted them (a VLM's include image tokens)
    images_sent: int = 0  # page images sent to the generation model
    pages_duplicate: int = 0  # pages repeating an earlier page of the run (page dedup)
    pages_by_text_source: Counter = field(default_factory=Counter)
    rejected_by_filter: Counter = field(default_factory=Counter)
    errors_by_code: Counter = field(default_factory=Counter)
    # Units given no LLM call, by reason code (the text of `skipped` before ':').
    units_skipped: Counter = field(default_factory=Counter)
    units_by_layout: Counter = field(default_factory=Counter)  # window | page | document

    def as_dict(self) -> dict:
        return {
            key: dict(sorted(value.items())) if isinstance(value, Counter) else value
            for key, value in vars(self).items()
        }


def image_name(doc_id: str, page: int, data: bytes) -> str:
    extension = "png" if data[:4] == b"\x89PNG" else "jpg"
    return f"{doc_id}-p{page:04d}.{extension}"


def sample_row(outcome: Outcome, kept: list[Pair]) -> dict:
    """A Sample row (Docmatix layout plus provenance) from a unit and its kept pairs."""
    unit, reply = outcome.unit, outcome.reply
    pages = unit.pages
    source = f"{unit.source}#pages={pages[0] + 1}-{pages[-1] + 1}"
    return {
        "id": unit.unit_id,
        "doc_id": unit.doc_id,
        "pages": pages,
        "images": [
            {"bytes": data, "path": image_name(unit.doc_id, page, data)}
            for page, data in zip(pages, unit.images, strict=True)
        ],
        "texts": [{"user": p.question, "assistant": p.answer, "source": source} for p in kept],
        "page_meta": [
            {"page": page, "text_source": text_source, "ocr_score": score, "duplicate_of": dup}
            for page, text_source, score, dup in zip(
                pages,
                unit.text_sources,
                unit.ocr_scores,
                unit.page_dups or [None] * len(pages),
                strict=True,
            )
        ],
        "qa_meta": [
            {
                "qa_id": p.qa_id,
                "prompt_id": reply.prompt_id,
                "model": reply.model,
                "rationale": p.rationale,
                "evidence_pages": p.evidence_pages,
                "question_type": p.question_type,
                "scores": [
                    {"filter": d.filter, "score": d.score, "reason": d.reason}
                    for d in p.decisions
                    if d.score is not None or d.reason
                ],
                **pair_ratings(p.decisions),
            }
            for p in kept
        ],
    }


def pair_ratings(decisions: list[Decision]) -> dict:
    """A pair's ratings on named axes (a per-axis judge's), and their minimum."""
    ratings = [r for d in decisions for r in d.ratings or []]
    return {
        "ratings": ratings,
        "rating_min": min((r["score"] for r in ratings), default=None),
    }


def reject_row(outcome: Outcome, pair: Pair | None, failed: Decision) -> dict:
    """The reject row of a pair of an Outcome, with the decision that rejected it, or (no pair)
    of its unreadable reply."""
    unit, reply = outcome.unit, outcome.reply
    return Reject(
        unit_id=unit.unit_id,
        doc_id=unit.doc_id,
        source=unit.source,
        pages=unit.pages,
        qa_id=pair.qa_id if pair else None,
        prompt_id=reply.prompt_id,
        question=pair.question if pair else None,
        answer=pair.answer if pair else None,
        filter=failed.filter,
        reason=failed.reason,
        score=failed.score,
        raw_reply=None if pair else reply.raw_reply,
        question_type=pair.question_type if pair else None,
    ).row()


def parse_reject_row(outcome: Outcome) -> dict | None:
    """The reject row of a reply with parts that could not be read as pairs, or None. One row
    per reply, carrying the raw text once, however many parts failed to parse."""
    problems = outcome.reply.parse_errors
    if not problems:
        return None
    shown = "; ".join(problems[:3]) + (
        f"; ... ({len(problems) - 3} more)" if len(problems) > 3 else ""
    )
    reason = f"{len(problems)} unreadable: {shown}"
    return reject_row(outcome, None, Decision("parse", False, reason=reason))


def outcome_rejects(outcome: Outcome) -> Iterator[dict]:
    """The reject rows of an Outcome, as the writer writes them: its unreadable reply (if any
    part was), then each pair a filter rejected, in order."""
    unreadable = parse_reject_row(outcome)
    if unreadable is not None:
        yield unreadable
    for pair in outcome.reply.pairs:
        failed = first_failure(pair.decisions)
        if failed is not None:
            yield reject_row(outcome, pair, failed)


class DatasetWriter:
    """Streams Outcomes into an output folder; `close` moves the finished run into place."""

    def __init__(
        self,
        out_dir: Path,
        rows_per_shard: int,
        inputs: list[str],
        shard_mb: float = 256,
        cut_by_limit: int = 0,
    ) -> None:
        self.out_dir = out_dir
        self.staging = out_dir / STAGING
        shutil.rmtree(self.staging, ignore_errors=True)
        self.samples = ShardSink(
            self.staging / DATA_DIR, "train", SAMPLE_SCHEMA, rows_per_shard, shard_mb * 2**20
        )
        self.rejects = ShardSink(self.staging / REJECTS_DIR, "rejects", REJECT_SCHEMA, 10_000)
        self.errors = ShardSink(self.staging / ERRORS_DIR, "errors", ERROR_SCHEMA, 10_000)
        self.inputs = {path: InputRecord(path) for path in inputs}
        self.counts = RunCounts(documents=len(inputs), inputs_cut_by_limit=cut_by_limit)
        self.seen_units: dict[str, str] = {}

    def refuse(self, error: InputError) -> None:
        """Account for an input that was never read (not a file, missing): its error row."""
        if error.source not in self.inputs:
            self.counts.documents += 1
        record = self.inputs.setdefault(error.source, InputRecord(error.source, error.doc_id))
        self._add_error(record, error)

    def add(self, outcome: Outcome) -> None:
        """Account for one Outcome and write what it yields."""
        unit, reply = outcome.unit, outcome.reply
        record = self.inputs.setdefault(unit.source, InputRecord(unit.source))
        record.doc_id = unit.doc_id
        if record.status == "missing":
            record.status = "ok"
        if unit.error_code is not None:
            error = InputError(unit.doc_id, unit.source, "ingest", unit.error_code, unit.error)
            self._add_error(record, error)
            return
        first_source = self.seen_units.setdefault(unit.unit_id, unit.source)
        if first_source != unit.source:
            # Identical bytes under another name: the same units again would duplicate samples.
            if record.status != "duplicate":
                message = f"same content as {first_source}"
                error = InputError(
                    unit.doc_id, unit.source, "ingest", "duplicate_document", message
                )
                self._add_error(record, error)
                record.status = "duplicate"
            return
        record.pages = max(record.pages, unit.doc_pages)
        self._count_pages(record, unit)
        record.units += 1
        self.counts.units += 1
        self.counts.units_by_layout[unit.layout or "window"] += 1
        if unit.skipped:  # no LLM call was made: no pairs, no sample, no error
            self.counts.units_skipped[unit.skipped.split(":", 1)[0].strip()] += 1
        self.counts.completion_tokens += reply.completion_tokens or 0
        self.counts.prompt_tokens += reply.prompt_tokens or 0
        self.counts.images_sent += reply.images_sent or 0
        self._add_pairs(record, outcome)

    def _count_pages(self, record: InputRecord, unit: Unit) -> None:
        """Count the unit's pages by text source, and those repeating an earlier page; pages
        that overlapping windows share are counted once."""
        pages = unit.pages
        dups = unit.page_dups or [None] * len(pages)
        for page, text_source, dup in zip(pages, unit.text_sources, dups, strict=True):
            if page > record.last_page:
                self.counts.pages_by_text_source[text_source] += 1
                self.counts.pages_duplicate += dup is not None
        record.last_page = max(record.last_page, *pages)

    def _add_error(self, record: InputRecord, error: InputError) -> None:
        record.status = "partial" if record.units else "error"
        record.errors.append({"stage": error.stage, "code": error.code, "message": error.message})
        self.counts.errors_by_code[error.code] += 1
        self.errors.add(error.row())

    def _add_pairs(self, record: InputRecord, outcome: Outcome) -> None:
        for reject in outcome_rejects(outcome):
            self.counts.rejected_by_filter[reject["filter"]] += 1
            self.rejects.add(reject)
        generated, kept = len(outcome.reply.pairs), outcome.kept()
        self.counts.pairs_generated += generated
        record.pairs_generated += generated
        self.counts.pairs_rejected += generated - len(kept)
        if kept:
            self.samples.add(sample_row(outcome, kept))
            self.counts.units_with_samples += 1
            self.counts.pairs_kept += len(kept)
            record.pairs_kept += len(kept)

    def close(self, manifest_extra: dict) -> dict:
        """Finish the shards, write the manifest, and replace the previous run's output."""
        self.counts.pages = sum(r.pages for r in self.inputs.values())
        files = {
            DATA_DIR: self.samples.close(),
            REJECTS_DIR: self.rejects.close(),
            ERRORS_DIR: self.errors.close(),
        }
        manifest = {
            **manifest_extra,
            "counts": self.counts.as_dict(),
            "inputs": [vars(r) for r in self.inputs.values()],
            "files": {folder: entries for folder, entries in files.items()},
        }
        self.staging.mkdir(parents=True, exist_ok=True)  # a run may have no row to write
        (self.staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        replace_from_staging(
            self.staging, self.out_dir, (DATA_DIR, REJECTS_DIR, ERRORS_DIR, "manifest.json")
        )
        return manifest


def replace_from_staging(staging: Path, out_dir: Path, names: tuple[str, ...]) -> None:
    """Move each named entry of a finished staging folder into out_dir, replacing what an
    earlier run left there (removed even when this run has no such entry); then drop staging."""
    for name in names:
        target, staged = out_dir / name, staging / name
        if staged.is_dir() or target.is_dir():
            replace_shards(staged, target)
        elif staged.exists():
            staged.replace(target)  # a file of ours by its name: manifest.json, funnel.json
        else:
            target.unlink(missing_ok=True)
    shutil.rmtree(staging)


def replace_shards(staged: Path, target: Path) -> None:
    """Swap the shard files in `target` for those in `staged` (either may be missing). Only
    files named as ShardSink names them are removed: a file someone put beside them stays."""
    if target.is_dir():
        for path in target.iterdir():
            if path.is_file() and SHARD_NAME.fullmatch(path.name):
                path.unlink()
    if staged.is_dir():
        target.mkdir(exist_ok=True)
        for path in staged.iterdir():
            path.rename(target / path.name)
    elif not any(target.iterdir()):
        target.rmdir()
