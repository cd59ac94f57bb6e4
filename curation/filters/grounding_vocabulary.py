"""What grounding reads an answer against: the `PageVocabulary` of a unit's pages (word stems,
quantities, and number groups: rows, columns, sentences), and the rules that say which words and
numbers of an answer are claims to check: arithmetic words need no page (`ARITHMETIC_WORDS`), a
number word counts only as the answer's quantity (`counts_claim`), a number with a unit is no
ratio (`unitless`), and the count of an answer's own list needs no page (`listed_counts`).
"""

from __future__ import annotations

import re
from functools import cached_property

from curation.filters.numbers.groups import PERCENT_CONTEXT, Group, page_groups
from curation.filters.numbers.quantity import Quantity, quantities
from curation.schema import UnitContext
from curation.tokens import WORD, stem

# Words that say how a number was computed, not what the page is about: an answer need not
# find them on the pages ("62 g heavier", "a net gain of 37", "12.5% of revenue").
ARITHMETIC_WORDS = frozenset(
    stem(w)
    for w in [
        "more",
        "less",
        "fewer",
        "higher",
        "lower",
        "larger",
        "smaller",
        "bigger",
        "difference",
        "gap",
        "change",
        "grew",
        "grow",
        "rose",
        "rise",
        "fell",
        "fall",
        "drop",
        "increase",
        "decrease",
        "decline",
        "gain",
        "gained",
        "lost",
        "cut",
        "reduced",
        "shorter",
        "longer",
        "heavier",
        "lighter",
        "net",
        "total",
        "combined",
        "together",
        "sum",
        "altogether",
        "overall",
        "average",
        "mean",
        "midpoint",
        "times",
        "ratio",
        "factor",
        "share",
        "proportion",
        "percent",
        "percentage",
        "points",
        "point",
        "apart",
        "shrinks",
        "shrank",
        "swelled",
        "rises",
        "falls",
        "comes",
        "totals",
        "thousand",
        "million",
        "billion",
        "many",
        "much",
        "relative",
        "terms",
        # Hedges and spans a model wraps a number in ("roughly 3.9 times", "505 a year over the
        # two years", "across the four quarters").
        "about",
        "roughly",
        "approximately",
        "around",
        "nearly",
        "almost",
        "per",
        "across",
        "year",
        "years",
        "quarter",
        "quarters",
        "month",
        "months",
    ]
)
LIST_ITEM = re.compile(r"^\s*(?:[-*\u2022+]|\d{1,2}[.)])\s+\S", re.MULTILINE)
ENUMERATION = re.compile(r":\s*([^.;:\n]+)")


HOW_MANY = re.compile(r"\bhow many\s+(?:more\s+|fewer\s+)?([A-Za-z][\w-]*)", re.IGNORECASE)


def counts_claim(word: Quantity, answer: str, question: str) -> bool:
    """A number word ("four", "one") is a claim to check only when it is the answer's quantity:
    the answer's first word ("Three: ..."), or the count a "how many" question asks for (next to
    the thing it counts, or the answer's only number). "One of the depots", "over the two years",
    "across the four quarters" (of a page that names Q1-Q4) count nothing the question asks."""
    pattern = rf"\b{re.escape(word.text)}\b(?!\s+of\b)((?:\s+[\w'-]+){{0,2}})"
    match = re.search(pattern, answer)
    if match is None:
        return False
    if not answer[: match.start()].strip(" *_#>-"):
        return True
    asked = HOW_MANY.search(question)
    if asked is None:
        return False
    counted = stem(asked.group(1))
    if counted in {stem(w) for w in match.group(1).split()}:
        return True
    return all(q.text.isalpha() for q in quantities(answer))


RATIO_WORDS = frozenset({"times", "x", "fold", "to", "as", "of", "the", "and", "or", "\u00d7"})


def unitless(number: Quantity, answer: str) -> bool:
    """The number carries no unit, so it may be a ratio ("3.1", "about 3.1 times as many", "a
    ratio of 0.86"); "47 g", "$2.4M" and "1.5 million cubic metres" are not ratios of two
    page numbers."""
    at = answer.find(number.text)
    rest = answer[at + len(number.text) :] if at >= 0 else ""
    if re.match(r"\W*(?:\w+\W+){0,6}?per\b", rest):
        return True  # "$1.19 million of revenue per million cubic metres": a ratio with a unit
    if (
        number.text.isalpha()
        or number.scale != 1
        or re.match(r"[$\u20ac\u00a3\u00a5]", number.text)
    ):
        return False
    after = re.match(r"\s*-?([A-Za-z\u00d7]+)", rest)
    return after is None or after.group(1).lower() in RATIO_WORDS


def listed_counts(answer: str) -> set[int]:
    """How many things an answer lists itself: its list items ("- a", "1. b"), or the names after
    a colon ("Two stations: Northgate and Colden"). "Two" counts them; no page needs to hold it."""
    counts = {len(LIST_ITEM.findall(answer))}
    for match in ENUMERATION.finditer(answer):
        counts.add(len(re.split(r",\s*(?:and\s+)?|\s+and\s+", match.group(1).strip())))
    return counts - {0, 1}


class PageVocabulary:
    """The word stems, quantities and number groups (rows, columns, sentences) of a unit's pages,
    plus the page numbers shown. The quantities and the groups are read on first use: most
    answers name no number, or one printed as it is, and reading the groups of a unit's pages
    was two thirds of the default chain's time."""

    def __init__(self, unit: UnitContext) -> None:
        self.unit = unit
        self.words = set(map(stem, WORD.findall("\n".join(unit.texts))))

    @cached_property
    def numbers(self) -> list[Quantity]:
        numbers = list({q.label: q for q in quantities("\n".join(self.unit.texts))}.values())
        # Page labels the model saw ("--- Page 3 ---") support an answer that cites them.
        return numbers + [Quantity(str(page + 1), float(page + 1), 0) for page in self.unit.pages]

    @cached_property
    def groups(self) -> list[Group]:
        return [g for page in self.unit.texts for g in page_groups(page)]

    @cached_property
    def percents(self) -> set[float]:
        """Numbers a percentage may be read as: percentages, and cells under a "%" or "share"
        label."""
        return {q.value for q in self.numbers if q.percent} | {
            q.value for g in self.groups if PERCENT_CONTEXT.search(g.context) for q in g.numbers
        }

    def supports(self, word: str) -> bool:
        return stem(word) in self.words

    def on_page(self, number: Quantity) -> bool:
        """The number is printed on the pages, equal after rounding to its written precision."""
        candidates = self.numbers
        if number.percent:
            candidates = [q for q in candidates if q.value in self.percents]
        return any(number.matches_quantity(q) for q in candidates)
