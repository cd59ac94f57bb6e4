"""The input side of `curation filter` (`curation.refilter`): the readers of the datasets it
takes, in batches, and the row adapter between their rows and the chain's pairs.

Three input layouts are read:
- conversations: rows with `texts: [{user, assistant, source}]` and usually `images` — our
  shards (a folder with data/*.parquet), a Docmatix-layout parquet file, or a Hugging Face
  dataset folder (parquet files, or `save_to_disk` output);
- flat: a jsonl or parquet file with `question`, `answer` and optionally `context` (page text,
  a string or a list of strings), `id` and `unit_id`.

`open_input` finds the readable parts of an input and `detect_layout` says which layout they
hold; `RowUnits` turns a row into its pairs (Pair) and back: a kept row keeps the input's
layout (a conversation row keeps only its kept pairs), a rejected pair becomes a Reject row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from curation.config import ConfigError
from curation.files import name_is_text, path_problem, path_text
from curation.output.shards import DATA_DIR, REJECTS_DIR
from curation.schema import Decision, Pair, Reject, UnitContext

CONVERSATIONS, FLAT = "conversations", "flat"
ALIGNED_COLUMNS = ("qa_meta",)  # per-pair lists that stay aligned with `texts`
IMAGES = frozenset({"images"})  # the bulk of a conversations row: not read by the first pass


class InputLayoutError(ConfigError):
    """An input that cannot be filtered; the message names the file and the column."""


@dataclass
class Part:
    """One readable piece of the input: a file (or a split) and how to iterate its rows."""

    name: str  # shown in errors and written to rejects as the source
    schema: pa.Schema
    batches: Iterator[pa.RecordBatch | pa.Table]
    prefix: str = "train"
    rows: int = 0  # how many rows it holds, known before reading them


def detect_layout(name: str, schema: pa.Schema) -> str:
    """conversations or flat, from the columns; an error names the file and the column."""
    columns = set(schema.names)
    if "texts" in columns:
        texts = schema.field("texts").type
        item = (
            texts.value_type if pa.types.is_list(texts) or pa.types.is_large_list(texts) else None
        )
        names = {f.name for f in item} if item is not None and pa.types.is_struct(item) else set()
        if not {"user", "assistant"} <= names:
            raise InputLayoutError(
                f"{name}: column 'texts' must be a list of {{user, assistant}}, got {texts}"
            )
        return CONVERSATIONS
    if "question" in columns or "answer" in columns:
        for column in ("question", "answer"):
            if column not in columns:
                raise InputLayoutError(f"{name}: missing column '{column}'")
            kind = schema.field(column).type
            if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
                raise InputLayoutError(f"{name}: column '{column}' must hold text, got {kind}")
        return FLAT
    raise InputLayoutError(
        f"{name}: unknown layout: expected a 'texts' column (conversations) or 'question' and "
        f"'answer' columns; found {', '.join(schema.names) or 'no columns'}"
    )


def readable(path: Path) -> Path | BinaryIO:
    """What pyarrow is given to read a file: its path, or, for a name that is not UTF-8 (which
    pyarrow cannot take), the file opened here by its real name."""
    return path if name_is_text(path) else path.open("rb")


def _parquet_parts(files: list[Path], batch_size: int, skip: frozenset[str]) -> list[Part]:
    parts = []
    for path in files:
        try:
            reader = pq.ParquetFile(readable(path))
        except (OSError, pa.ArrowException) as exc:
            raise InputLayoutError(
                f"{path_text(path)}: not a readable parquet file: {exc}"
            ) from exc
        parts.append(
            Part(
                path_text(path),
                reader.schema_arrow,
                reader.iter_batches(
                    batch_size=batch_size,
                    columns=[c for c in reader.schema_arrow.names if c not in skip],
                ),
                rows=reader.metadata.num_rows,
            )
        )
    return parts


def _hf_disk_parts(folder: Path, batch_size: int, skip: frozenset[str]) -> list[Part]:
    from datasets import DatasetDict, load_from_disk

    try:
        loaded = load_from_disk(str(folder))
    except (OSError, ValueError) as exc:
        raise InputLayoutError(
            f"{path_text(folder)}: not a readable dataset folder: {exc}"
        ) from exc
    splits = loaded.items() if isinstance(loaded, DatasetDict) else [("train", loaded)]
    return [
        Part(
            f"{path_text(folder)}[{split}]",
            dataset.data.schema,
            dataset.remove_columns([c for c in dataset.column_names if c in skip])
            .with_format("arrow")
            .iter(batch_size=batch_size),
            prefix=split,
            rows=dataset.num_rows,
        )
        for split, dataset in splits
    ]


def _jsonl_part(path: Path, batch_size: int) -> Part:
    name = path_text(path)
    try:
        reader = pajson.open_json(
            readable(path), read_options=pajson.ReadOptions(block_size=1 << 22)
        )
    except (OSError, pa.ArrowException) as exc:
        raise InputLayoutError(f"{name}: not readable as JSON lines: {exc}") from exc

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for batch in reader:
                for start in range(0, batch.num_rows, batch_size):
                    yield batch.slice(start, batch_size)
        except pa.ArrowException as exc:
            raise InputLayoutError(f"{name}: not readable as JSON lines: {exc}") from exc

    with open(path, "rb") as fh:  # lines, counted without parsing them
        lines = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 22), b""))
    return Part(name, reader.schema, batches(), rows=lines)


def open_input(
    path: Path, batch_size: int, skip: frozenset[str] = frozenset()
) -> tuple[list[Part], list[dict]]:
    """The readable parts of an input file or folder, in a fixed order, and an error entry for
    each file the folder names that is not one (`data_files`); columns in `skip` are not read
    where the format allows it (parquet, dataset folders); the schema keeps them."""
    name = path_text(path)
    problem = path_problem(path)
    if problem:  # the input itself: nothing else to filter
        raise InputLayoutError(f"{name}: {problem[1]}")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            return _parquet_parts([path], batch_size, skip), []
        if suffix in (".jsonl", ".json", ".ndjson"):
            return [_jsonl_part(path, batch_size)], []
        raise InputLayoutError(f"{name}: unknown file type '{suffix}' (parquet or jsonl expected)")
    if (path / "state.json").exists() or (path / "dataset_dict.json").exists():
        return _hf_disk_parts(path, batch_size, skip), []
    files, refused = data_files(path)
    if files and files[0].suffix == ".parquet":
        return _parquet_parts(files, batch_size, skip), refused
    if files:
        return [_jsonl_part(f, batch_size) for f in files], refused
    not_read = "".join(f"; not read: {e['path']} ({e['code']}: {e['message']})" for e in refused)
    raise InputLayoutError(
        f"{name}: unknown layout: no parquet or jsonl files in the folder{not_read}"
    )


def data_files(folder: Path) -> tuple[list[Path], list[dict]]:
    """The parquet files of a folder (those in data/ when it has some, else all but rejects/),
    or else its jsonl files; and an error entry ({path, status, code, message}) for each name
    matched that is not a regular file (a FIFO, a device, a folder), which is never opened. A
    matched folder holding matched files (Spark's `x.parquet/part-0.parquet`) only holds them."""
    matches = sorted((folder / DATA_DIR).glob("*.parquet")) or sorted(folder.rglob("*.parquet"))
    matches = [m for m in matches if REJECTS_DIR not in m.relative_to(folder).parts]
    matches = matches or sorted(folder.glob("*.jsonl"))
    holders = {parent for match in matches for parent in match.parents}
    files, refused = [], []
    for match in matches:
        problem = path_problem(match)
        if problem is None and match.is_dir():
            if match in holders:
                continue
            problem = ("not_a_file", "a folder, not a data file")
        if problem is None:
            files.append(match)
        else:
            code, message = problem
            refused.append(
                {"path": path_text(match), "status": "error", "code": code, "message": message}
            )
    return files, refused


def _page_texts(context: object) -> list[str]:
    """One text per page, a page without text as "" so the list stays aligned with the pages."""
    if context is None:
        return []
    if isinstance(context, str):
        return [context]
    return ["" if text is None else str(text) for text in context]


def stored_ratings(ratings: object) -> dict[str, float]:
    """A pair's stored judge ratings ([{"axis", "score"}] in qa_meta) as {axis: score}."""
    if not isinstance(ratings, list):
        return {}
    return {
        str(r["axis"]): float(r["score"])
        for r in ratings
        if isinstance(r, dict) and r.get("axis") and isinstance(r.get("score"), int | float)
    }


class RowUnits:
    """Turns input rows into units of pairs (Pair) and rebuilds rows from kept pairs."""

    def __init__(self, layout: str) -> None:
        self.layout = layout
        self.source = ""
        self.row_number = 0
        self.used_keys: set[str] = set()
        self.used_units: set[str] = set()

    def _key(self, key: str, used: set[str] | None = None) -> str:
        """Pair keys (and row units) are unique over the whole input (rows may repeat an id)."""
        used = self.used_keys if used is None else used
        if key in used:
            key = f"{key}@row{self.row_number}"
        used.add(key)
        return key

    def pairs(self, row: dict) -> list[Pair]:
        """The pairs of one row, with the row's pages and page text."""
        own_id = row.get("id")
        own_id = str(own_id) if own_id not in (None, "") else f"row{self.row_number}"
        if self.layout == FLAT:
            texts = _page_texts(row.get("context"))
            pairs = [
                Pair(
                    qa_id=self._key(own_id),
                    question=row["question"] or "",
                    answer=row["answer"] or "",
                    rationale=row.get("rationale"),
                    evidence_pages=list(row.get("evidence_pages") or []),
                    question_type=row.get("question_type"),
                    unit=UnitContext(
                        unit_id=str(row.get("unit_id") or own_id),
                        pages=list(row.get("pages") or range(len(texts))),
                        texts=texts,
                        source=str(row.get("source") or ""),
                    ),
                )
            ]
        else:
            meta = row.get("qa_meta") or []
            pages = list(row.get("pages") or range(len(row.get("images") or [])))
            texts = _page_texts(row.get("page_texts") or row.get("context"))
            # A row is a unit of its own: another row with the same id has other pages, which
            # grounding and the unit's duplicate-question check must not mix with these.
            unit = UnitContext(
                unit_id=self._key(own_id, self.used_units),
                pages=pages,
                texts=texts,
                source=str(row.get("source") or ""),
            )
            pairs = []
            for i, turn in enumerate(row.get("texts") or []):
                info = meta[i] if i < len(meta) else {}
                pairs.append(
                    Pair(
                        qa_id=self._key(f"{own_id}#{i}"),
                        question=turn.get("user") or "",
                        answer=turn.get("assistant") or "",
                        rationale=info.get("rationale"),
                        evidence_pages=list(info.get("evidence_pages") or []),
                        question_type=info.get("question_type"),
                        unit=unit,
                        ratings=stored_ratings(info.get("ratings")),
                    )
                )
        self.row_number += 1
        return pairs

    @staticmethod
    def _rewritten(record: dict, pair: Pair) -> dict:
        """The rationale and evidence pages of a pair, for the ones of these keys `record` has."""
        fields = {
            "rationale": pair.rationale,
            "evidence_pages": pair.evidence_pages,
            "question_type": pair.question_type,
        }
        return {key: value for key, value in fields.items() if key in record}

    def kept_row(self, row: dict, pairs: list[Pair], kept: list[bool]) -> dict | None:
        """The row with only its kept pairs, as the chain rewrote them (citations cleaned out),
        or None when none is kept. Evidence pages are written where the input has a place for
        them (a flat `evidence_pages` column, `qa_meta` entries)."""
        if not any(kept):
            return None
        out = dict(row)
        if self.layout == FLAT:
            pair = pairs[0]
            out["question"], out["answer"] = pair.question, pair.answer
            return {**out, **self._rewritten(row, pair)}
        n = len(row["texts"])
        out["texts"] = [
            {**turn, "user": pair.question, "assistant": pair.answer}
            for turn, pair, keep in zip(row["texts"], pairs, kept, strict=True)
            if keep
        ]
        meta = row.get("qa_meta")
        if isinstance(meta, list) and len(meta) == n:
            out["qa_meta"] = [
                {**info, **self._rewritten(info, pair)} if isinstance(info, dict) else info
                for info, pair in zip(meta, pairs, strict=True)
            ]
        for column in ALIGNED_COLUMNS:
            if isinstance(out.get(column), list) and len(out[column]) == n:
                out[column] = [v for v, keep in zip(out[column], kept, strict=True) if keep]
        return out

    def reject_row(self, row: dict, pair: Pair, index: int, failed: Decision) -> dict:
        meta = row.get("qa_meta") or []
        info = meta[index] if self.layout == CONVERSATIONS and index < len(meta) else {}
        return Reject(
            unit_id=pair.unit.unit_id,
            doc_id=str(row["doc_id"]) if row.get("doc_id") is not None else None,
            source=self.source,
            pages=pair.unit.pages,
            qa_id=info.get("qa_id") or pair.qa_id,
            prompt_id=info.get("prompt_id"),
            question=pair.question,
            answer=pair.answer,
            filter=failed.filter,
            reason=failed.reason,
            score=failed.score,
            question_type=pair.question_type,
        ).row()
