"""What Ray's workers run: each stage's function or actor class (`pipeline.stages` declares
them). A worker unpickles its stage by importing this module, so it holds only what every
stage needs; each stage imports its own libraries when it first runs: the generation actor
never loads PyMuPDF nor the filters, and Ray Data's own actors, which unpickle the whole plan,
load none of them. Every worker of a run pays its imports while the node is busiest, starting.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

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
    """Ray actor: holds one engine (model loaded once) and generates pairs for batches of units."""

    def __init__(self, generate: GenerateConfig, units: UnitsConfig) -> None:
        from curation.generate import QAGenerator

        self.generator = QAGenerator(generate, units)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return pa.Table.from_pylist(self.generator(batch.to_pylist()), schema=OUTCOME_SCHEMA)


def filtered(chain: FilterChain, batch: pa.Table) -> pa.Table:
    """A batch of Outcome rows with every pair's filter decisions filled in by `chain`."""
    outcomes = chain([Outcome.from_row(row) for row in batch.to_pylist()])
    return pa.Table.from_pylist([o.to_row() for o in outcomes], schema=OUTCOME_SCHEMA)


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
