"""Rule filters: empty fields, forbidden patterns (the Docmatix list), repeated questions."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, PrivateAttr, field_validator

from curation.filters.base import Filter, PairContext
from curation.schema import Decision

PairField = Literal["question", "answer", "rationale"]


def field_text(pair: PairContext, name: str) -> str:
    return getattr(pair, name) or ""


class NonEmptyFilter(Filter):
    """Reject a pair whose field is empty or shorter than `min_chars` after trimming."""

    type: ClassVar[str] = "non_empty"
    fields: list[PairField] = Field(default_factory=lambda: ["question", "answer"])
    min_chars: int = Field(1, ge=1)

    def decide(self, pairs: list[PairContext]) -> list[Decision]:
        decisions = []
        for pair in pairs:
            short = next(
                (f for f in self.fields if len(field_text(pair, f).strip()) < self.min_chars), None
            )
            decisions.append(
                self.reject(f"{short} is empty or under {self.min_chars} chars")
                if short
                else self.keep()
            )
        return decisions


class PatternFilter(Filter):
    """Reject a pair when a field matches any named regex (Docmatix: brackets, IPs, `word.word`...)."""

    type: ClassVar[str] = "patterns"
    fields: list[PairField] = Field(default_factory=lambda: ["question", "answer"])
    patterns: dict[str, str] = Field(min_length=1)
    ignore_case: bool = False
    _compiled: list[tuple[str, re.Pattern[str]]] = PrivateAttr(default_factory=list)

    @field_validator("patterns")
    @classmethod
    def _valid_regexes(cls, patterns: dict[str, str]) -> dict[str, str]:
        for name, pattern in patterns.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern '{name}' is not a valid regex: {exc}") from exc
        return patterns

    def model_post_init(self, context: object) -> None:
        flags = re.IGNORECASE if self.ignore_case else 0
        self._compiled = [(name, re.compile(p, flags)) for name, p in self.patterns.items()]

    def decide(self, pairs: list[PairContext]) -> list[Decision]:
        return [self._decide_one(pair) for pair in pairs]

    def _decide_one(self, pair: PairContext) -> Decision:
        for field_name in self.fields:
            text = field_text(pair, field_name)
            for name, regex in self._compiled:
                match = regex.search(text)
                if match:
                    return self.reject(f"{field_name} has {name}: {match.group(0)[:40]!r}")
        return self.keep()


class UnitDuplicateFilter(Filter):
    """Reject a pair whose question (case and spacing ignored) was already asked in its unit."""

    type: ClassVar[str] = "unit_duplicates"

    def decide(self, pairs: list[PairContext]) -> list[Decision]:
        seen: set[tuple[str, str]] = set()
        decisions = []
        for pair in pairs:
            key = (pair.unit_id, " ".join(pair.question.lower().split()))
            decisions.append(
                self.reject("question repeats an earlier one") if key in seen else self.keep()
            )
            seen.add(key)
        return decisions
