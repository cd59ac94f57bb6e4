"""Quantities in answers and pages, and the one arithmetic step that derives an answer's number.

The search is bounded: never every pair of the hundreds of numbers a unit may hold, whose
differences and ratios would make almost any round value "derivable". An answer number that is
not printed on the pages counts as derived only from

* the numbers the question, answer or rationale name (and the pages hold): any pair, and the sum
  or average of all of them;
* a pair inside one related group (a table row, a table column, a prose sentence), related when
  it holds a named number (not a year) or shares the question's and answer's words (weighted by
  rarity; at least RELATED_SHARE of the best group's score; MAX_RELATED groups of at most
  MAX_GROUP numbers, so at most 24 x 16 x 15 ordered pairs);
* a pair across the two groups nearest the question (a difference, ratio or share);
* the sum or average of a related row, column or sentence (its years, a header or a total cell
  left out), or one of its numbers as a share of that sum.

Within a group every operation is tried whatever the wording (a model writes "over the two
years" for a sum, "a year" for an average): difference, sum and average (PAIR_SUMS: of any pair,
or of neighbouring numbers only), ratio, percentage (a / b x 100), percentage change, and
product (named numbers only). The words (CUES) only order the search and break ties: a number
written coarser than COARSE of its value ("22%", "3.1 times"), which some pair matches by chance,
is settled only by an operation its wording points to. Types are not words: a percentage and a
count are never combined, a percentage answer is a difference only of percentages, a number
with a unit ("47 g", "$2.4M") is no ratio, and a percentage change goes the way the answer says
("cut by" is a fall). The derived value must equal the answer's number rounded to the precision
it is written with ("28%" takes 27.5 to 28.5; "27.6%" 27.55 to 27.65), in the page's units or
in plain units ("$138,000" from "287 thousand dollars" less "149 thousand dollars").
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from curation.filters.numbers.groups import PERCENT_CONTEXT, Group
from curation.filters.numbers.quantity import Quantity
from curation.tokens import content_words, stem


@dataclass(frozen=True)
class Derivation:
    """How an answer number follows from page numbers: an operation and its operands."""

    operation: str  # diff | ratio | pct | pct_change | product | sum | avg
    operands: tuple[Quantity, ...]

    def describe(self) -> str:
        return f"{self.operation}({','.join(q.label for q in self.operands)})"


# The operations a question's or answer's words point to ("how many more", "in total", "what
# share"). They only ORDER the search (which derivation a kept pair's reason names first): every
# operation is tried whatever the wording, since a model may write "over the two years" for a sum
# or "a year" for an average. The guard against "almost anything is derivable" is the group.
CUES = {
    "diff": r"more|less|fewer|higher|lower|larger|smaller|bigger|differ|gap|change|gr[eo]w|ros[e]|"
    r"rise|fell|fall|drop|increas|decreas|declin|gain|lost|lose|cut|reduc|under|above|below|"
    r"exceed|apart|shorter|longer|heavier|lighter|net|left|remain|how long|points?",
    "ratio": r"times|ratio|factor|as (?:many|much)|multiple|fold",
    "product": r"times|each|multipl|\bper\b",
    "pct": r"share|proportion|fraction|portion|percent(?:age)? of|% of|covered|made up|of (?:the|all|total)",
    "pct_change": r"percent|%|gr[eo]w|rose|rise|fell|fall|increas|decreas|declin|chang|cut|"
    r"reduc|shr[iu]nk|swell|drop|gain|lost",
    "sum": r"total|combined|together|in all|sum|altogether|overall|cumulative|both|\band\b",
    "avg": r"average|mean|typical|midpoint|per year|a year|each year",
}
CUE_PATTERNS = {op: re.compile(rf"(?:{pattern})", re.IGNORECASE) for op, pattern in CUES.items()}
POINTS = re.compile(r"\bpoints?\b", re.IGNORECASE)  # a difference of percentages, as a percentage
OPERATIONS = ("diff", "sum", "avg", "ratio", "pct", "pct_change", "product")
RELATED_SHARE = 0.7  # a related group scores at least this share of the best group's score
MAX_RELATED = 24  # groups searched per question: those sharing the most words with it
CROSS_GROUPS = 2  # the best related groups whose numbers also pair across groups
# Pairs a sum or an average is taken of: "adjacent" (neighbouring numbers of a group once its
# years are left out: "412 lamps in 2023 and 598 in 2024", two neighbouring cells) or "any".
PAIR_SUMS = "any"
ACROSS = frozenset({"diff", "ratio", "pct"})  # what a pair across two groups may give


# A number written coarser than this share of its value ("22%" is 21.5-22.5, 4.5% wide; "3.1
# times" 3.2%) is matched by chance by some pair of a related group's numbers: derived by an
# operation its wording does not point to, it is unsettled (rejected). Finer numbers ("23.7%",
# "1,010", "$138,000") are kept whatever operation gives them.
COARSE = 0.01


def asked_operations(text: str) -> frozenset[str]:
    """The operations the words of a question and answer point to (all when none does)."""
    asked = frozenset(op for op, pattern in CUE_PATTERNS.items() if pattern.search(text))
    return asked or frozenset(OPERATIONS)


FALL = re.compile(
    r"\b(?:fell|falls?|drop\w*|declin\w*|decreas\w*|cut|reduc\w*|shr[iu]nk\w*|lost|down)\b", re.I
)
RISE = re.compile(r"\b(?:rose|rises?|grew|grows?|growth|increas\w*|gain\w*|up|jump\w*)\b", re.I)


def direction(text: str) -> int:
    """The way a change goes by the words of a question and answer: -1 a fall, 1 a rise, 0 not
    said (or both). A percentage change must go that way ("cut by 41.7%" is not the rise from
    600,000 to 850,000): the sign is a claim, not a phrasing."""
    fall, rise = bool(FALL.search(text)), bool(RISE.search(text))
    return rise - fall


def coarse(target: Quantity) -> bool:
    return target.step > COARSE * abs(target.value)


def _pair_values(
    a: float, b: float, percent: bool, pointwise: bool, sums: bool, way: int = 0
) -> Iterator[tuple[str, float]]:
    """The one-step results of an ordered pair that the answer's number may equal: of counts a
    difference, sum, average or ratio; of a percentage answer a share or percentage change (and
    a difference, sum or average of percentages). `sums`: the pair may be summed or averaged."""
    if (pointwise or not percent) and a >= b:
        yield "diff", a - b
        if sums:
            yield "sum", a + b
            yield "avg", (a + b) / 2
    if not b:
        return
    if percent:
        yield "pct", a / b * 100
        if way * (a - b) >= 0:  # the change from b to a goes the way the words say
            yield "pct_change", (a - b) / b * 100
    else:
        yield "ratio", a / b


def _runs(numbers: list[Quantity]) -> Iterator[list[Quantity]]:
    """The run a row, column or sentence is summed or averaged over: the whole of it without its
    years ("412 lamps in 2023 and 598 in 2024"), a header cell (written with fewer decimals than
    every other: "300" above "98.2"; a year heading a column of counts) or a total cell (the sum
    of the others)."""
    numbers = [q for q in numbers if not q.is_year] if len(numbers) > 2 else numbers
    n = len(numbers)
    if n < 2 or any(q.is_year for q in numbers):
        return
    header = numbers[0].decimals < min(q.decimals for q in numbers[1:])
    first = int(n > 2 and header)
    rest = math.fsum(q.value for q in numbers[first:-1])
    last = n - int(n > 2 and numbers[-1].matches(rest))
    if last - first >= 2:
        yield numbers[first:last]


def _aggregates(target: Quantity, numbers: list[Quantity], shares: bool) -> Derivation | None:
    """The sum or average of a run, or (`shares`) one of its numbers as a share of its sum."""
    total = math.fsum(q.value for q in numbers)
    scale = numbers[0].scale if len({q.scale for q in numbers}) == 1 else 1.0
    if shares:
        if not total:
            return None
        for q in numbers:
            if target.matches(q.value / total * 100):
                return Derivation("share_of_sum", (q, *(o for o in numbers if o is not q)))
        return None
    if target.matches_scaled(total, scale):
        return Derivation("sum", tuple(numbers))
    if target.matches_scaled(total / len(numbers), scale):
        return Derivation("avg", tuple(numbers))
    return None


class DerivationSearch:
    """Finds the one arithmetic step from a unit's page numbers to an answer's number.

    `topic` is the content-word stems of the question and answer; `asked` every operation, those
    their words point to first (the order only picks which derivation is named). Groups are
    related to the question when they hold a number it names (not a year) or share its words
    (see the module docstring).
    """

    def __init__(
        self,
        groups: list[Group],
        named: list[Quantity],
        topic: set[str],
        asked: frozenset[str] = frozenset(OPERATIONS),
        points: bool = False,
        way: int = 0,
    ) -> None:
        self.named = named
        self.way = way
        self.asked = asked
        self.points = points
        named_values = {q.value for q in named if not q.is_year}
        holding = [g for g in groups if any(q.value in named_values for q in g.numbers)]
        # Words weighted by rarity among the groups (idf): "cell" on every line of a battery
        # note says less about which row is meant than "energy".
        shared = [topic & {stem(w) for w in content_words(g.context)} for g in groups]
        frequency = Counter(word for words in shared for word in words)
        weight = {w: math.log((len(groups) + 1) / (n + 0.5)) for w, n in frequency.items()}
        scored = sorted(
            (
                (sum(weight[w] for w in words), g)
                for g, words in zip(groups, shared, strict=True)
                if words and g not in holding
            ),
            key=lambda item: -item[0],
        )
        best = scored[0][0] if scored else 0.0
        by_words = [g for score, g in scored if score >= best * RELATED_SHARE]
        self.related = (holding + by_words)[:MAX_RELATED]
        # The best groups by words, whatever their share of the best score: an answer that
        # combines two facts shares some of its words with each ("revenue" with one sentence,
        # "operating costs" with the next).
        self.nearest = (holding + [g for _, g in scored])[:CROSS_GROUPS]

    def find(self, target: Quantity, ratio: bool = True) -> Derivation | None:
        """The first derivation of `target`: named pairs, related-group pairs, runs, aggregates.
        `ratio`: the target may be a ratio (it carries no unit: "3.1", "3.1 times")."""
        self.ratio = ratio
        named = [q for q in self.named if q.value != target.value]
        found = self._pairs(target, named, points=True, products=True, sums="any")
        if found:
            return found
        for group in self.related:
            numbers = [q for q in group.numbers if q.value != target.value]
            found = self._pairs(target, numbers, points=not target.percent or self.points)
            if found:
                return found
        # Two facts an answer combines often sit in different sentences or slides ("services
        # $2.3M" on one, "revenue of $18.4M" on the next): pairs across the best related groups.
        across = {q for group in self.nearest for q in group.numbers}
        numbers = [q for q in across if q.value != target.value and not q.is_year]
        found = self._pairs(
            target, sorted(numbers, key=lambda q: q.text), points=self.points, allowed=ACROSS
        )
        if found:
            return found
        for group in self.related:
            # Cells under a "(%)" caption are percentages even when not marked one by one.
            percent_group = bool(PERCENT_CONTEXT.search(group.context))
            for run in _runs(group.numbers):
                if any(q.percent for q in run) and not target.percent:
                    continue
                if target.percent and not (percent_group or all(q.percent for q in run)):
                    # A count run gives a percentage only as one cell's share of its sum.
                    found = _aggregates(target, run, shares=not any(q.percent for q in run))
                else:
                    found = _aggregates(target, run, shares=False)
                if found and self._settled(target, found):
                    return found
        for numbers in (named, [q for q in named if not q.is_year]):
            if len(numbers) >= 2:
                found = _aggregates(target, numbers, shares=False)
                if found and self._settled(target, found):
                    return found
        return None

    def _settled(self, target: Quantity, derivation: Derivation) -> bool:
        """A fine number is settled by any derivation; a coarse one (COARSE) only by an operation
        its wording points to."""
        operation = "pct" if derivation.operation == "share_of_sum" else derivation.operation
        return not coarse(target) or operation in self.asked

    def _pairs(
        self,
        target: Quantity,
        numbers: list[Quantity],
        points: bool,
        products: bool = False,
        allowed: frozenset[str] = frozenset(OPERATIONS),
        sums: str | None = None,
    ) -> Derivation | None:
        sums = sums or PAIR_SUMS
        # Neighbours once years are left out: "412 lamps in 2023 and 598 in 2024".
        order = {id(q): k for k, q in enumerate(q for q in numbers if not q.is_year)}
        found: list[Derivation] = []
        for i, a in enumerate(numbers):
            for j, b in enumerate(numbers):
                if i == j or a.percent != b.percent:
                    continue  # a percentage and a count are not compared
                # A percentage answer is a difference ("points") only of percentages.
                pointwise = points or a.percent
                # Sums and differences compare in plain units when the pair shares a scale.
                scale = a.scale if a.scale == b.scale else target.scale
                summed = {"sum", "avg"} <= allowed and (
                    sums == "any"
                    or (id(a) in order and id(b) in order and abs(order[id(a)] - order[id(b)]) == 1)
                )
                for operation, value in _pair_values(
                    a.value, b.value, target.percent, pointwise, summed, self.way
                ):
                    if operation not in allowed or (operation == "ratio" and not self.ratio):
                        continue
                    additive = operation in ("diff", "sum", "avg")
                    if target.matches_scaled(value, scale if additive else target.scale):
                        if operation in self.asked:
                            return Derivation(operation, (a, b))  # none comes before it
                        found.append(Derivation(operation, (a, b)))
                if products and j > i and not target.percent and target.matches(a.value * b.value):
                    found.append(Derivation("product", (a, b)))
        found = [d for d in found if self._settled(target, d)]
        return min(found, key=lambda d: d.operation not in self.asked) if found else None
