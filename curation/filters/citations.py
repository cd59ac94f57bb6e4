"""Citation markers a model adds to a question or answer ("[1]", "[page 2]", "(p. 3)"): cleaned
out, with the pages they cite added to evidence_pages, or the pair rejected."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

from pydantic import Field

from curation.filters.base import Filter
from curation.filters.rules import PairField, field_text
from curation.schema import Decision, Pair

PAGE_WORD = r"(?:pages?|pp?|pgs?|slides?)(?:\.\s*|\s+)"  # "page 2", "p. 2", "pp.2-3"; not "P1"
PAGE_NUMBERS = r"\d+(?:\s*(?:[-\u2013\u2014,&]|and|to)\s*\d+)*"
# The spaces before a marker go with it, so "rose 5% [1]." becomes "rose 5%.".
MARKER = re.compile(
    rf"[ \t]*(?:[\[(]\s*(?:(?:see|sources?|cf\.)\s*:?\s*)?{PAGE_WORD}(?P<pages>{PAGE_NUMBERS})\s*[\])]"
    r"|\[\^?(?P<bare>\d+)\])",
    re.IGNORECASE,
)
RANGE = re.compile(r"(\d+)\s*(?:[-\u2013\u2014]|to)\s*(\d+)|(\d+)", re.IGNORECASE)
MAX_RANGE = 20  # "pp. 2-5" cites 2, 3, 4, 5; a wider "range" is read as its two ends


def cited_pages(numbers: str) -> list[int]:
    """The pages a citation's number list names: "2, 4-6 and 9" -> 2, 4, 5, 6, 9."""
    pages: list[int] = []
    for match in RANGE.finditer(numbers):
        if match.group(3):
            pages.append(int(match.group(3)))
            continue
        first, last = int(match.group(1)), int(match.group(2))
        pages += range(first, last + 1) if 0 <= last - first <= MAX_RANGE else [first, last]
    return pages


@dataclass
class Citation:
    """One marker found in a field, and the pages it adds to evidence_pages."""

    field: str
    marker: str
    pages: list[int]


class CitationFilter(Filter):
    """Citation markers in a pair's fields: "[page 2]", "(p. 3)", "(see pages 2-3)", "[Source:
    slide 4]", and a bare "[2]" or "[^2]".

    action `clean` keeps the pair with the markers removed (with the spaces before them) and
    their pages added to evidence_pages, numbered as the prompt shows pages (1-based); the
    decision's reason lists what was removed. An explicit page citation adds its pages as
    written, so the grounding filter still rejects a page the unit lacks; a bare number is a page
    only when the prompt showed that page, and is removed either way (a footnote the model
    added). A bare "[2]" that the unit's own page text holds is the document's reference, not a
    citation, and is left in place. action `reject` rejects a pair holding any marker instead.
    """

    type: ClassVar[str] = "citations"
    fields: list[PairField] = Field(default_factory=lambda: ["question", "answer"])
    action: Literal["clean", "reject"] = "clean"

    def decide(self, pairs: list[Pair]) -> list[Decision]:
        decisions = []
        for pair in pairs:
            found = self._citations(pair)
            if not found:
                decisions.append(self.keep())
            elif self.action == "reject":
                first = found[0]
                decisions.append(self.reject(f"{first.field} has citation {first.marker!r}"))
            else:
                removed = ", ".join(repr(c.marker) for c in found)
                added = self._added_pages(pair, found)
                pages = f"; evidence pages + {', '.join(map(str, added))}" if added else ""
                decisions.append(self.keep(reason=f"removed {removed}{pages}"))
        return decisions

    def rewrite(self, pair: Pair) -> Pair:
        if self.action == "reject":
            return pair
        found = self._citations(pair)
        if not found:
            return pair
        cleaned = {c.field: self._clean(pair, field_text(pair, c.field)) for c in found}
        return replace(
            pair,
            **cleaned,
            evidence_pages=pair.evidence_pages + self._added_pages(pair, found),
        )

    def _citations(self, pair: Pair) -> list[Citation]:
        found = []
        for name in self.fields:
            text = field_text(pair, name)
            if "[" not in text and "(" not in text:
                continue
            for match in MARKER.finditer(text):
                citation = self._citation(pair, name, match)
                if citation:
                    found.append(citation)
        return found

    def _citation(self, pair: Pair, name: str, match: re.Match[str]) -> Citation | None:
        marker = match.group(0).strip()
        if match.group("pages"):
            return Citation(name, marker, cited_pages(match.group("pages")))
        if any(marker in text for text in pair.unit.texts):
            return None  # the document's own reference mark, quoted
        number = int(match.group("bare"))
        return Citation(name, marker, [number] if number - 1 in pair.unit.pages else [])

    def _clean(self, pair: Pair, text: str) -> str:
        def drop(match: re.Match[str]) -> str:
            return match.group(0) if self._citation(pair, "", match) is None else ""

        return MARKER.sub(drop, text).strip()

    @staticmethod
    def _added_pages(pair: Pair, found: list[Citation]) -> list[int]:
        added: list[int] = []
        for citation in found:
            added += [p for p in citation.pages if p not in pair.evidence_pages + added]
        return added
