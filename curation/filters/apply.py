"""`curation filter`: run a filter chain over a dataset on disk and write what it keeps.

Three input layouts are read, in batches:
- conversations: rows with `texts: [{user, assistant, source}]` and usually `images` — our
  shards (a folder with data/*.parquet), a Docmatix-layout parquet file, or a Hugging Face
  dataset folder (parquet files, or `save_to_disk` output);
- flat: a jsonl or parquet file with `question`, `answer` and optionally `context` (page text,
  a string or a list of strings), `id` and `unit_id`.

Per-pair filters run batch by batch; the chain's dedup entry runs across the whole input, in input
order: with one streaming Deduplicator, or, when the dedup's backend says Ray (`auto` counts the
input's rows against `ray_above_pairs`), in two passes — the chain's decisions are staged and the
surviving pairs grouped by LSH band in Ray, then the input is read again and written with the
duplicates found. Kept rows keep the input's layout (a conversation row keeps only its kept
pairs, and is dropped when none is left); every rejected pair goes to rejects/ with the filter
and the reason.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from curation.config import ConfigError
from curation.files import name_is_text, path_problem, path_text
from curation.filters.chain import FilterChain
from curation.filters.dataset_dedup import Checker, dataset_checker
from curation.filters.dedup import DEDUP_STAGING, pair_text
from curation.outdir import OutputFolder
from curation.output.shards import (
    DATA_DIR,
    FUNNEL_FILE,
    REJECTS_DIR,
    STAGING,
    ShardSink,
    replace_from_staging,
)
from curation.schema import (
    DECISION_TYPE,
    REJECT_SCHEMA,
    Decision,
    Pair,
    Reject,
    UnitContext,
    first_failure,
)

CONVERSATIONS, FLAT = "conversations", "flat"
ALIGNED_COLUMNS = ("qa_meta",)  # per-pair lists that stay aligned with `texts`
IMAGES = frozenset({"images"})  # the bulk of a conversations row: not read by the first pass
OnProgress = Callable[[str, int, int], None]  # (phase, rows done, rows in all)


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


@dataclass
class Funnel:
    """What went in, what each filter rejected, what came out."""

    input: str
    chain: str
    layout: str = ""
    rows_in: int = 0
    rows_out: int = 0
    pairs_in: int = 0
    pairs_kept: int = 0
    pairs_rejected: int = 0
    seen: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    order: list[str] = field(default_factory=list)
    inactive: list[str] = field(default_factory=list)
    # Each file read ({path, status: ok, rows}) and each name that could not be ({path, status:
    # error, code, message}): every file the input names is accounted for.
    inputs: list[dict] = field(default_factory=list)

    def count(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            self.seen[decision.filter] += 1
            self.rejected[decision.filter] += not decision.passed

    def as_dict(self) -> dict:
        return {
            "input": self.input,
            "chain": self.chain,
            "layout": self.layout,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "pairs_in": self.pairs_in,
            "pairs_kept": self.pairs_kept,
            "pairs_rejected": self.pairs_rejected,
            "filters": [
                {
                    "filter": name,
                    "seen": self.seen[name],
                    "rejected": self.rejected[name],
                    "kept": self.seen[name] - self.rejected[name],
                }
                for name in self.order
            ],
            "inactive": self.inactive,
            "inputs": self.inputs,
            "errors_by_code": dict(
                sorted(Counter(e["code"] for e in self.inputs if e["status"] == "error").items())
            ),
        }


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


class BatchFilter:
    """Filters batches of rows in input order: the chain within each batch, then dedup against
    every pair kept so far."""

    def __init__(
        self,
        chain: FilterChain,
        units: RowUnits,
        funnel: Funnel,
        rejects: ShardSink,
        checker: Checker | None = None,
        staged: StagedDecisions | None = None,
    ):
        self.chain, self.dedup = chain.split()
        self.staged = staged
        self.deduplicator = checker
        self.units, self.funnel, self.rejects = units, funnel, rejects
        funnel.order = [f.label for f in self.chain.filters] + (
            [self.dedup.label] if self.dedup else []
        )

    def __call__(self, rows: list[dict]) -> list[dict]:
        """The kept rows of one batch; rejected pairs go to the rejects sink."""
        owners: list[tuple[int, int]] = []
        contexts: list[Pair] = []
        for r, row in enumerate(rows):
            for i, pair in enumerate(self.units.pairs(row)):
                owners.append((r, i))
                contexts.append(pair)
        if self.staged:
            decisions = self.staged.take(len(contexts))
            self.chain.replay(contexts, decisions)
        else:
            decisions = self.chain.decide(contexts)
        if self.dedup and self.deduplicator:
            alive = [k for k, ds in enumerate(decisions) if all(d.passed for d in ds)]
            verdicts = self.deduplicator.check(
                [pair_text(contexts[k].question, contexts[k].answer) for k in alive],
                [contexts[k].qa_id for k in alive],
            )
            for k, verdict in zip(alive, verdicts, strict=True):
                decisions[k].append(self.dedup.decision(verdict))
        sizes = Counter(r for r, _ in owners)
        kept = [[True] * sizes[r] for r in range(len(rows))]
        for (r, i), pair, pair_decisions in zip(owners, contexts, decisions, strict=True):
            self.funnel.pairs_in += 1
            self.funnel.count(pair_decisions)
            failed = first_failure(pair_decisions)
            if failed is None:
                self.funnel.pairs_kept += 1
                continue
            self.funnel.pairs_rejected += 1
            kept[r][i] = False
            self.rejects.add(self.units.reject_row(rows[r], pair, i, failed))
        row_pairs: list[list[Pair]] = [[] for _ in rows]
        for (r, _), pair in zip(owners, contexts, strict=True):
            row_pairs[r].append(pair)
        kept_rows = [
            self.units.kept_row(row, pairs, flags)
            for row, pairs, flags in zip(rows, row_pairs, kept, strict=True)
        ]
        self.funnel.rows_in += len(rows)
        out = [row for row in kept_rows if row is not None]
        self.funnel.rows_out += len(out)
        return out


class StagedDecisions:
    """The first of two passes, for a dedup in Ray: `pairs` runs the chain over the input in
    order, writes every pair's decisions to a Parquet file in the staging folder and gives the
    pairs that passed them to the whole-dataset dedup (`dataset_checker`). The second pass reads
    the input again and `take`s the decisions back instead of running the chain twice (a judge
    would be asked twice)."""

    SCHEMA = pa.schema([("decisions", pa.list_(DECISION_TYPE))])

    def __init__(
        self,
        chain: FilterChain,
        parts: Callable[[], list[Part]],
        layout: str,
        staging: Path,
        on_progress: OnProgress = lambda *_: None,
    ) -> None:
        self.rules = chain.split()[0]
        self.parts, self.layout, self.on_progress = parts, layout, on_progress
        self.path = staging / "decisions.parquet"
        self.written = False
        self._stored: Iterator[list[Decision]] = iter(())

    def pairs(self) -> Iterator[tuple[str, str]]:
        """(key, text) of each pair that passed the chain, in input order."""
        parts = self.parts()
        units = RowUnits(self.layout)  # the same pair keys as the second pass's
        total = sum(part.rows for part in parts)
        with pq.ParquetWriter(self.path, self.SCHEMA) as writer:
            for part in parts:
                for batch in part.batches:
                    self.on_progress("filtering (pass 1 of 2)", units.row_number, total)
                    contexts = [p for row in batch.to_pylist() for p in units.pairs(row)]
                    decisions = self.rules.decide(contexts)
                    for pair, pair_decisions in zip(contexts, decisions, strict=True):
                        if all(d.passed for d in pair_decisions):
                            yield pair.qa_id, pair_text(pair.question, pair.answer)
                    rows = {"decisions": [[vars(d) for d in ds] for ds in decisions]}
                    writer.write_table(pa.Table.from_pydict(rows, schema=self.SCHEMA))
        self.on_progress("dedup of the kept pairs in Ray", units.row_number, total)
        self.written = True
        self._stored = self._read()

    def _read(self) -> Iterator[list[Decision]]:
        for batch in pq.ParquetFile(self.path).iter_batches(batch_size=10_000):
            for decisions in batch.column("decisions").to_pylist():
                yield [Decision(**d) for d in decisions]

    def take(self, count: int) -> list[list[Decision]]:
        """The decisions of the next `count` pairs."""
        taken = list(islice(self._stored, count))
        if len(taken) != count:
            raise InputLayoutError(f"{self.path}: the input changed between the two passes")
        return taken


def whole_dataset_dedup(
    chain: FilterChain,
    input_path: Path,
    parts: list[Part],
    layout: str,
    batch_size: int,
    staging: Path,
    on_progress: OnProgress,
) -> tuple[Checker | None, StagedDecisions | None]:
    """The chain's dedup over the whole input (`dataset_checker`), and when it runs in Ray the
    first pass's decisions, which the second pass takes back instead of running the chain."""
    dedup = chain.split()[1]
    if dedup is None:
        return None, None
    # The chain needs a row's images only to count its pages when it has no `pages`.
    needs_images = layout == CONVERSATIONS and any("pages" not in p.schema.names for p in parts)
    first = StagedDecisions(
        chain,
        lambda: open_input(input_path, batch_size, frozenset() if needs_images else IMAGES)[0],
        layout,
        staging,
        on_progress,
    )
    total = sum(part.rows for part in parts)
    checker = dataset_checker(dedup, total, staging / DEDUP_STAGING, first.pairs)
    return checker, first if first.written else None


def filter_dataset(
    input_path: Path | str, chain_path: Path | str, out_dir: Path | str, **options: Any
) -> dict:
    """Apply a chain to a dataset on disk (options: see `filter_into`) in an output folder
    claimed and locked before anything else (`curation.outdir`); the funnel."""
    with OutputFolder(Path(out_dir), "filter"):
        return filter_into(input_path, chain_path, out_dir, **options)


def filter_into(
    input_path: Path | str,
    chain_path: Path | str,
    out_dir: Path | str,
    batch_size: int = 256,
    rows_per_shard: int = 500,
    on_progress: OnProgress = lambda *_: None,
) -> dict:
    """Apply a chain to a dataset on disk; write data/, rejects/ and funnel.json; the funnel.
    `on_progress(phase, rows done, rows in all)` is called before each batch."""
    input_path, out_dir = Path(input_path), Path(out_dir)
    chain = FilterChain.load(chain_path)
    parts, refused = open_input(input_path, batch_size)
    name = path_text(input_path)
    layouts = {detect_layout(part.name, part.schema) for part in parts}
    if len(layouts) > 1:
        raise InputLayoutError(f"{name}: files of different layouts ({', '.join(layouts)})")
    resolved_out = out_dir.resolve()
    if resolved_out == input_path.resolve() or resolved_out in input_path.resolve().parents:
        raise InputLayoutError(
            f"{path_text(out_dir)}: the output folder holds the input; choose another"
        )
    funnel = Funnel(name, chain.name, layouts.pop(), inactive=chain.inactive)
    funnel.inputs = [{"path": p.name, "status": "ok", "rows": p.rows} for p in parts] + refused

    staging = out_dir / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    rejects = ShardSink(staging / REJECTS_DIR, "rejects", REJECT_SCHEMA, 10_000)
    # One sink per output prefix (a DatasetDict's splits), each in its own staging folder.
    sinks: dict[str, ShardSink] = {}
    units = RowUnits(funnel.layout)
    total = sum(part.rows for part in parts)
    checker, staged = whole_dataset_dedup(
        chain, input_path, parts, funnel.layout, batch_size, staging, on_progress
    )
    phase = "filtering (pass 2 of 2)" if staged else "filtering"
    apply_chain = BatchFilter(chain, units, funnel, rejects, checker, staged)
    for part in parts:
        sink = sinks.get(part.prefix)
        if sink is None:
            folder = staging / DATA_DIR / part.prefix
            sink = sinks[part.prefix] = ShardSink(folder, part.prefix, part.schema, rows_per_shard)
        units.source = part.name
        for batch in part.batches:
            on_progress(phase, funnel.rows_in, total)
            for row in apply_chain(batch.to_pylist()):
                sink.add(row)
    on_progress(phase, funnel.rows_in, total)
    written = []
    for prefix, sink in sinks.items():
        for entry in sink.close():
            (staging / DATA_DIR / prefix / entry["file"]).rename(staging / DATA_DIR / entry["file"])
            written.append(entry)
        shutil.rmtree(staging / DATA_DIR / prefix, ignore_errors=True)
    files = {DATA_DIR: written, REJECTS_DIR: rejects.close()}
    report = {**funnel.as_dict(), "chain_file": path_text(chain_path), "files": files}
    (staging / FUNNEL_FILE).write_text(json.dumps(report, indent=2) + "\n")
    replace_from_staging(staging, out_dir, (DATA_DIR, REJECTS_DIR, FUNNEL_FILE))
    return report
