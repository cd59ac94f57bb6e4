"""Entity grounding: the names a pair uses (people, titles, organisations, places) must be on
its unit's pages. Numbers and dates are the numeric grounding's (curation.filters.grounding).

No model: an entity is a capitalised word or a run of them ("Kestrel Bay", "British East India
Company", "COVID-19") that does not open a sentence, a line or a clause after a colon. It is on
the pages when its letters and digits, case-folded and with spaces, hyphens and possessives left
out, occur in the pages' text treated the same way: "Kes-\ntrel Bay", "KESTREL BAY" and OCR's
"Kest rel Bay" all hold "kestrelbay". A run not found whole is still on the pages when each of
its words is (a page says "the Island Loop" and "Harbor", the answer "Harbor and Island Loop").

The pages are the unit's and the document's first page (`UnitContext.title_text`: a run carries
its start to every unit), which hold the document's title and owner; the document's file name
counts too ("northwind_ferries_2025.pdf" names "Northwind Ferries"). A scanned document's first
page has its text only once OCR has read it, in the unit that holds it: a later unit sees its
file name only.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import PurePosixPath
from typing import ClassVar, Literal

from pydantic import Field

from curation.filters.base import Filter
from curation.schema import Decision, Pair

# A capitalised word (or an acronym such as "COVID-19", "UNESCO"), joined into a run by spaces,
# hyphens, "&" and the lower-case links names hold ("Bank of England", "Port of Spain").
WORD = r"[A-Z][\w'\u2019]*(?:-\w+)*"
LINK = r"(?:\s+(?:of|the|and|de|du|da|van|von|del|la|le|for|&)){0,2}"
ENTITY = re.compile(rf"(?<![\w'\u2019-]){WORD}(?:{LINK}\s+{WORD})*")
# Where a sentence, a line, a list item, a table cell or a clause after a colon starts: a
# capital there need not be a name.
OPENING = re.compile(r"(?:^|[.!?:;|#\n\"\u201c(\u2014]|\*\*)[\s\"'*_\u201c(\-+\u2022\d.)]*$")
POSSESSIVE = re.compile(r"['\u2019]s\b")
# What `squeeze` drops: \W is exactly "not str.isalnum() and not _" (checked over every code
# point), so this keeps the characters a per-character isalnum() test kept, in C.
NOT_ALNUM = re.compile(r"[\W_]+")
# Capitalised words that are not names: the first person, labels of the page's own parts, the
# calendar (dates are the numeric grounding's), and words titles capitalise.
NOT_NAME_LIST = """
    i mr mrs ms dr prof st sir table tables figure fig page pages section chapter appendix part item note notes
    january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday
    jan feb mar apr jun jul aug sep sept oct nov dec
    yes no not what which who whom whose where when why how is are was were do does did can
    could will would should the a an in on at to for of and or but if this that these those
    it its they their there he she his her we our you your"""
NOT_NAMES = frozenset(NOT_NAME_LIST.split())


def squeeze(text: str) -> str:
    """Letters and digits only, case-folded (NFKC), possessives and line-end hyphens removed:
    the form in which a name and the pages are compared."""
    text = unicodedata.normalize("NFKC", text)
    text = POSSESSIVE.sub("", text)
    return NOT_ALNUM.sub("", text.casefold())


@lru_cache(maxsize=16)
def squeezed_pages(text: str) -> str:
    """`squeeze` of a unit's pages, which each of the unit's pairs is checked against: once a
    unit, not once a pair."""
    return squeeze(text)


def entities(text: str) -> list[str]:
    """The capitalised runs of a text that do not open a sentence, a line or a clause (a run
    that does opens is kept from its second word on), without words that are not names."""
    found = []
    for match in ENTITY.finditer(text):
        words = match.group(0).split()
        if OPENING.search(text[: match.start()]):
            words = words[1:]
        while words and (words[0].lower() in NOT_NAMES or not words[0][0].isupper()):
            words = words[1:]
        while words and (words[-1].lower() in NOT_NAMES or not words[-1][0].isupper()):
            words = words[:-1]
        name = " ".join(words)
        # A one-letter word or a label ("Q3", "B1") is not a name; a number is numeric grounding's.
        if len(squeeze(name)) >= 2 and not re.fullmatch(r"[A-Z]\d{1,2}", name):
            found.append(name)
    return list(dict.fromkeys(found))


class EntityGroundingFilter(Filter):
    """Reject a pair whose answer (or question) names a person, title, organisation or place
    that none of its unit's pages name: an invented fact, or a question about something the
    pages do not hold. Put `skip_types: [not_answerable]` on it: an intended negative asks
    about what the pages lack."""

    type: ClassVar[str] = "entity_grounding"
    fields: list[Literal["question", "answer"]] = Field(
        default_factory=lambda: ["question", "answer"]
    )
    if_no_text: Literal["keep", "reject"] = Field(
        "keep", description="What to do with a pair whose unit has no page text to check."
    )

    def decide(self, pairs: list[Pair]) -> list[Decision]:
        return [self._decide_one(pair) for pair in pairs]

    def _decide_one(self, pair: Pair) -> Decision:
        if not any(text.strip() for text in pair.unit.texts):
            if self.if_no_text == "reject":
                return self.reject("no page text to check names against")
            return self.keep(reason="no page text to check names against")
        name = (
            PurePosixPath(pair.unit.source.split("#")[0].split("?")[0]).stem
            if pair.unit.source
            else ""
        )
        pages = squeezed_pages("\n".join([*pair.unit.texts, pair.unit.title_text, name]))
        for field_name in self.fields:
            missing = [e for e in entities(getattr(pair, field_name)) if not on_pages(e, pages)]
            if missing:
                names = ", ".join(repr(e) for e in missing[:3])
                what = "asks about" if field_name == "question" else "names"
                return self.reject(
                    f"{field_name} {what} {names}, which neither the unit's pages nor the "
                    "document's first page or name holds"
                )
        return self.keep()


def on_pages(entity: str, pages: str) -> bool:
    """Whether the squeezed pages hold the entity whole, or each of its capitalised words."""
    if squeeze(entity) in pages:
        return True
    words = [squeeze(w) for w in entity.split() if w[0].isupper() and w.lower() not in NOT_NAMES]
    return bool(words) and all(w in pages for w in words)
