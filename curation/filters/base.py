"""The filter interface: a batch of pairs in, one Decision per pair out. A filter reads each pair
(schema.Pair) against its unit (`pair.unit`: the pages it was generated from)."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from pydantic import Field

from curation.config import StrictModel
from curation.schema import Decision, Pair


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
    def decide(self, pairs: list[Pair]) -> list[Decision]:
        """One Decision per pair, in order."""

    def rewrite(self, pair: Pair) -> Pair:
        """The pair as the later filters and the output see it once this filter passed it.

        Most filters leave it as it is; a cleaning filter (citations) returns a changed copy. It
        must depend on the pair alone, so that a second pass can replay it from the decisions."""
        return pair
