"""Pairs for filter tests: a pair record (schema.Pair) in a unit made up on the spot."""

from __future__ import annotations

from curation.schema import Pair, UnitContext


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
