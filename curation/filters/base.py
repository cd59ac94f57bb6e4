"""The filter interface: a batch of pairs in, one Decision per pair out."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import Field

from curation.config import StrictModel
from curation.schema import Decision


@dataclass
class PairContext:
    """A question-answer pair together with the unit it was generated from."""

    unit_id: str
    question: str
    answer: str
    rationale: str | None = None
    pair_id: str = ""  # a stable id (qa_id); dedup reports duplicates by it
    kind: str = "document"  # document | slides | images
    evidence_pages: list[int] = field(default_factory=list)
    pages: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    images: list[bytes] = field(default_factory=list)  # the unit's page images (for a VLM judge)
    # The document's first page's text (its start) and its source (a path or URL), when known:
    # they hold the title and owner a later unit's pages need not print.
    title_text: str = ""
    source: str = ""
    # Ratings a per-axis judge already gave this pair (a rated dataset's qa_meta.ratings):
    # a judge rating the same axes decides from them instead of asking again.
    ratings: dict[str, float] = field(default_factory=dict)
    # The question type its prompt asked for (extractive, multi_hop, ..., not_answerable), or
    # None (untyped data); a filter may retype the pair (`rewrite`).
    question_type: str | None = None


class Filter(StrictModel):
    """A filter is configured from its chain YAML entry (its fields are its parameters)."""

    type: ClassVar[str]
    name: str | None = None  # the label in decisions and reports; the type when unset
    skip_types: list[str] = Field(
        default_factory=list,
        description="Question types this filter does not judge (their pairs pass it): e.g. a "
        "pattern that drops the word 'unanswerable' lets intended not_answerable pairs through.",
    )

    @property
    def label(self) -> str:
        return self.name or self.type

    @property
    def active(self) -> bool:
        """False for an entry that cannot run as configured (a judge without an engine)."""
        return True

    def keep(self, score: float | None = None, reason: str = "") -> Decision:
        return Decision(self.label, True, score, reason)

    def reject(self, reason: str, score: float | None = None) -> Decision:
        return Decision(self.label, False, score, reason)

    @abstractmethod
    def decide(self, pairs: list[PairContext]) -> list[Decision]:
        """One Decision per pair, in order."""

    def rewrite(self, pair: PairContext) -> PairContext:
        """The pair as the later filters and the output see it once this filter passed it.

        Most filters leave it as it is; a cleaning filter (citations) returns a changed copy. It
        must depend on the pair alone, so that a second pass can replay it from the decisions."""
        return pair
