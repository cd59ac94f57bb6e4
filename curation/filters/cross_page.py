"""Cross-page check: a multi-hop or comparison pair must really use two pages of its unit."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar, Literal

from pydantic import Field

from curation.filters.base import Filter
from curation.filters.numbers.quantity import quantities
from curation.schema import Decision, Pair, UnitContext
from curation.tokens import WORD, content_words, stem


class PageTerms:
    """Each page's word stems and numbers (values), to find what only one page holds."""

    def __init__(self, unit: UnitContext) -> None:
        self.pages = list(unit.pages)
        self.words = [set(map(stem, WORD.findall(text))) for text in unit.texts]
        self.numbers = [{q.value for q in quantities(text)} for text in unit.texts]

    def only_on(self, term: str, number: float | None) -> int | None:
        """The one page (0-based page number) holding the term, or None (none or several)."""
        found = [
            page
            for page, words, numbers in zip(self.pages, self.words, self.numbers, strict=True)
            if (number in numbers if number is not None else stem(term) in words)
        ]
        return found[0] if len(found) == 1 else None


class CrossPageFilter(Filter):
    """A pair of a cross-page type (multi_hop, comparison) must use two pages: at least one word
    or number of its question, answer or rationale is found only on page A and another only on
    page B, and its evidence pages, when given, name both. Otherwise it is retyped (default: as
    an extractive, single-page pair, the reason says why) or rejected (`action: reject`). The
    kept reason names the two pages and a term only each holds."""

    type: ClassVar[str] = "cross_page"
    types: list[str] = Field(
        default_factory=lambda: ["multi_hop", "comparison"],
        description="The question types that must use two pages.",
    )
    action: Literal["retype", "reject"] = "retype"
    retype_to: str = Field("extractive", description="The type a retyped pair gets.")
    evidence_numbering: Literal["one_based", "zero_based"] = "one_based"

    def decide(self, pairs: list[Pair]) -> list[Decision]:
        terms: dict[str, PageTerms] = {}
        decisions = []
        for pair in pairs:
            if pair.question_type not in self.types:
                decisions.append(self.keep())
                continue
            if pair.unit.unit_id not in terms:
                terms[pair.unit.unit_id] = PageTerms(pair.unit)
            used, why = self.two_pages(pair, terms[pair.unit.unit_id])
            if used:
                decisions.append(self.keep(reason=why))
            elif self.action == "reject":
                decisions.append(self.reject(f"{pair.question_type} pair {why}"))
            else:
                decisions.append(self.keep(reason=f"retyped {self.retype_to}: {why}"))
        return decisions

    def rewrite(self, pair: Pair) -> Pair:
        if pair.question_type in self.types and not self.two_pages(pair, PageTerms(pair.unit))[0]:
            return replace(pair, question_type=self.retype_to)
        return pair

    def two_pages(self, pair: Pair, terms: PageTerms) -> tuple[bool, str]:
        """Whether the pair uses two pages, and the reason (the pages and their terms, or what
        is missing)."""
        if len(pair.unit.pages) < 2:
            return False, "has one page to use"
        text = " ".join((pair.question, pair.answer, pair.rationale or ""))
        exclusive: dict[int, str] = {}
        for q in quantities(text):
            page = terms.only_on(q.label, q.value)
            if page is not None:
                exclusive.setdefault(page, q.label)
        for word in content_words(text):
            page = terms.only_on(word, None)
            if page is not None:
                exclusive.setdefault(page, word)
        shift = 1 if self.evidence_numbering == "one_based" else 0
        shown = sorted(exclusive)
        if pair.evidence_pages:
            cited = {p - shift for p in pair.evidence_pages}
            shown = [page for page in shown if page in cited]
        if len(shown) < 2:
            where = ", ".join(f"'{exclusive[p]}' only on page {p + shift}" for p in shown)
            scope = " of its evidence pages" if pair.evidence_pages else ""
            return False, f"uses one page{scope} ({where or 'no term only one page holds'})"
        a, b = shown[0], shown[1]
        return True, (
            f"uses pages {a + shift} and {b + shift}: '{exclusive[a]}' only on "
            f"{a + shift}, '{exclusive[b]}' only on {b + shift}"
        )
