"""`curation filter`: run a filter chain over a dataset on disk and write what it keeps.

The input is read in batches (`curation.refilter_input`: its layouts, readers and row adapter).
The chain's filters run batch by batch; its dedup runs after them across the whole input, in
input order: with one streaming Deduplicator, or, when the dedup's backend says Ray (`auto`
counts the input's rows against `ray_above_pairs`), in two passes — the filters' decisions are
staged and the surviving pairs grouped by LSH band in Ray, then the input is read again and
written with the duplicates found. Kept rows keep the input's layout (a conversation row keeps
only its kept pairs, and is dropped when none is left); every rejected pair goes to rejects/
with the filter and the reason.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curation.files import path_text
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
from curation.refilter_input import (
    CONVERSATIONS,
    IMAGES,
    InputLayoutError,
    Part,
    RowUnits,
    detect_layout,
    open_input,
)
from curation.schema import DECISION_TYPE, REJECT_SCHEMA, Decision, Pair, first_failure

OnProgress = Callable[[str, int, int], None]  # (phase, rows done, rows in all)


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


class BatchFilter:
    """Filters batches of rows in input order: the chain's filters within each batch, then its
    dedup against every pair kept so far."""

    def __init__(
        self,
        chain: FilterChain,
        units: RowUnits,
        funnel: Funnel,
        rejects: ShardSink,
        checker: Checker | None = None,
        staged: StagedDecisions | None = None,
    ):
        self.chain, self.dedup = chain, chain.dedup
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
    """The first of two passes, for a dedup in Ray: `pairs` runs the chain's filters over the
    input in order, writes every pair's decisions to a Parquet file in the staging folder and gives the
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
        self.chain = chain
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
                    decisions = self.chain.decide(contexts)
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
    dedup = chain.dedup
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
