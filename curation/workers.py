"""What Ray's workers run: each stage's function or actor class (`pipeline.stages` declares
them). A worker unpickles its stage by importing this module, so it holds only what every
stage needs; each stage imports its own libraries when it first runs: the generation actor
never loads PyMuPDF nor the filters, and Ray Data's own actors, which unpickle the whole plan,
load none of them. Every worker of a run pays its imports while the node is busiest, starting.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, overload

import pyarrow as pa

from curation.config import GenerateConfig, IngestConfig, UnitsConfig
from curation.schema import OCR_UNIT_SCHEMA, OUTCOME_SCHEMA, UNIT_SCHEMA, Outcome

if TYPE_CHECKING:
    from curation.filters.chain import FilterChain


def ingest_batch(
    batch: pa.Table,
    ingest: IngestConfig,
    units: UnitsConfig,
    skip: frozenset[str] = frozenset(),
    to_ocr: bool = False,
    needs_text: bool = False,
) -> Iterator[pa.Table]:
    """Ray stage: one input file per batch in, its Unit rows out one at a time (streaming).
    Units in `skip` (finished before an interruption) are left out; an item's `page_dups`
    (JSON) marks its pages that repeat earlier pages of the run. `to_ocr`: the OCR stage
    follows, so the rows carry the pages rendered for it (OCR_UNIT_SCHEMA). `needs_text`: the
    model reads text only, so a unit without any (and no page left for OCR) is skipped."""
    from curation.ingest import ingest_document
    from curation.ingest.pagedup import dups_from_json
    from curation.ingest.quality import mark_textless

    schema = OCR_UNIT_SCHEMA if to_ocr else UNIT_SCHEMA
    for item in batch.to_pylist():
        dups = dups_from_json(item.get("page_dups"))
        path = os.fsdecode(item["path"])  # the real name, as bytes through Arrow
        for row in ingest_document(path, ingest, units, item["source"], dups):
            if row["unit_id"] not in skip:
                row = mark_textless(row) if needs_text else row
                yield pa.Table.from_pylist([row], schema=schema)


class OCRActor:
    """Ray actor: fills in the text of the pages that need OCR, with one OCR model for its
    life, loaded on the first such page (a run without one loads none); a batch without one
    passes as it is, its images not copied out of Arrow and back. It asks for no CPU
    (onnxruntime spreads a page over the node's cores anyway), so it never holds a 1-CPU node's
    only CPU; `needs_text`: see `ingest_batch`."""

    def __init__(self, ingest: IngestConfig, needs_text: bool = False) -> None:
        from curation.ingest.ocr_stage import OCRStage

        self.stage = OCRStage(ingest)
        self.needs_text = needs_text

    def __call__(self, batch: pa.Table) -> pa.Table:
        from curation.ingest.ocr_stage import pending_ocr
        from curation.ingest.quality import mark_textless

        if not pending_ocr(batch):  # ingest_batch marked its textless units already
            return batch.drop_columns(["ocr_images"]).cast(UNIT_SCHEMA)
        units = self.stage(batch.to_pylist())
        if self.needs_text:
            units = [mark_textless(unit) for unit in units]
        return pa.Table.from_pylist(units, schema=UNIT_SCHEMA)


class GenerateActor:
    """Ray actor: holds one engine (model loaded once) and generates pairs for batches of units.
    Given a chain (`chain_path`: one that calls no model, which `pipeline.pair_stages` runs
    here rather than as a stage of its own), it fills in every pair's filter decisions too."""

    def __init__(
        self,
        generate: GenerateConfig,
        units: UnitsConfig,
        chain_path: str | None = None,
        cache: bool = True,
    ) -> None:
        from curation.generate import QAGenerator

        self.generator = QAGenerator(generate, units)
        self.chain = None
        if chain_path is not None:
            from curation.filters.chain import load_chain

            self.chain = load_chain(chain_path, cache)

    def __call__(self, batch: pa.Table) -> pa.Table:
        outcomes = self.generator(rows_of(batch))
        if self.chain is not None:
            outcomes = decided(self.chain, outcomes)
        return with_images(outcomes, batch, OUTCOME_SCHEMA)


def decided(chain: FilterChain, rows: list[dict]) -> list[dict]:
    """Outcome rows with every pair's filter decisions filled in by `chain`."""
    return [outcome.to_row() for outcome in chain([Outcome.from_row(row) for row in rows])]


def filtered(chain: FilterChain, batch: pa.Table) -> pa.Table:
    """A batch of Outcome rows with every pair's filter decisions filled in by `chain`."""
    return with_images(decided(chain, rows_of(batch)), batch, OUTCOME_SCHEMA)


class ArrowImages(Sequence[bytes]):
    """One row's page images, left in the batch's Arrow column: a page's bytes are copied out
    only when a stage reads them (a VLM's prompt, a judge shown the pages, decontamination's
    image hashes). Copying every row's images into Python and back at each stage border cost
    more than the filter chain's own work (1.4 ms a row of two 150 dpi pages)."""

    def __init__(self, column: pa.ChunkedArray, row: int) -> None:
        self.pages = column[row]

    def __len__(self) -> int:
        return len(self.pages) if self.pages.is_valid else 0

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...
    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self.pages.values[index].as_py()


def rows_of(batch: pa.Table) -> list[dict]:
    """A batch's rows as dicts, each row's `images` an `ArrowImages` over the batch's column."""
    rows = batch.drop_columns(["images"]).to_pylist()
    images = batch.column("images")
    for i, row in enumerate(rows):
        row["images"] = ArrowImages(images, i)
    return rows


def with_images(rows: list[dict], batch: pa.Table, schema: pa.Schema) -> pa.Table:
    """`rows` (one per row of `batch`, in its order, as `rows_of` gave them and a stage filled
    in) as a table of `schema`, their images the batch's own column, not copied."""
    ids = [row["unit_id"] for row in rows]
    if ids != batch.column("unit_id").to_pylist():
        raise RuntimeError(f"a stage returned units {ids[:3]}... for the batch's other units")
    at = schema.get_field_index("images")
    table = pa.Table.from_pylist(
        [{k: v for k, v in row.items() if k != "images"} for row in rows],
        schema=schema.remove(at),
    )
    return table.add_column(
        at, schema.field(at), batch.column("images").cast(schema.field(at).type)
    )


def filter_batch(batch: pa.Table, chain_path: str, cache: bool = True) -> pa.Table:
    """Ray stage: fill in every pair's filter decisions (the chain's filters; its dedup runs
    over the whole dataset when the run assembles it, `curation.run.assemble`)."""
    from curation.filters.chain import load_chain

    return filtered(load_chain(chain_path, cache), batch)


class FilterActor:
    """Ray actor: the filter stage of a chain whose judge or verifier runs its model in-process
    (the local engine). It holds the chain, and so the model, for its life: as tasks, every
    worker process the filter landed in loaded a model of its own, with no memory reserved."""

    def __init__(self, chain_path: str, cache: bool = True) -> None:
        from curation.filters.chain import load_chain

        self.chain = load_chain(chain_path, cache)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return filtered(self.chain, batch)
