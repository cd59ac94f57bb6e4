"""Pairs for filter tests: a pair record (schema.Pair) in a unit made up on the spot, and Outcome
rows through a chain as the filter stage runs it."""

from __future__ import annotations

import pyarrow as pa

from curation.filters import FilterChain
from curation.schema import OUTCOME_SCHEMA, Pair, UnitContext
from curation.workers import filtered


def pair_in(
    unit_id: str = "u",
    question: str = "",
    answer: str = "",
    rationale: str | None = None,
    *,
    qa_id: str = "",
    evidence_pages: list[int] | tuple[int, ...] = (),
    question_type: str | None = None,
    ratings: dict[str, float] | None = None,
    **unit: object,
) -> Pair:
    """A pair read against a unit of `unit_id` with the unit's fields given (pages, texts, ...)."""
    return Pair(
        qa_id,
        question,
        answer,
        rationale,
        list(evidence_pages),
        question_type,
        unit=UnitContext(unit_id, **unit),
        ratings=dict(ratings or {}),
    )


def filter_rows(chain: FilterChain, rows: list[dict]) -> list[dict]:
    """Outcome rows (the fields a test leaves out are null) through `chain` as the filter stage
    runs it: an Arrow batch in, one out."""
    return filtered(chain, pa.Table.from_pylist(rows, schema=OUTCOME_SCHEMA)).to_pylist()
