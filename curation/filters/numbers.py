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

import ast
import dataclasses
import math
import operator
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from curation.tokens import NUMBER_WORDS, content_words, stem

SCALES = {
    "k": 1e3,
    "K": 1e3,
    "thousand": 1e3,
    "m": 1e6,
    "M": 1e6,
    "mn": 1e6,
    "million": 1e6,
    "B": 1e9,
    "bn": 1e9,
    "billion": 1e9,
}
# A number as written: optional sign and currency, digits with thousands separators or a decimal
# part, then an optional scale and percent sign. Digits glued to letters ("Q3", "NMC811", "1C")
# are names, not quantities.
QUANTITY = re.compile(
    r"(?<![\w.,])(?P<sign>[+\-\u2212])?(?:(?P<cur>[$\u20ac\u00a3\u00a5])\s?)?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?:\s?(?P<scale>thousand|million|billion|mn|bn|[kKmMB])(?!\w)|(?!\w|[.,]\d))"
    r"(?P<pct>\s?%|\s(?:percent|per cent)\b)?"
)
NUMBER_WORD = re.compile(r"\b(?:" + "|".join(NUMBER_WORDS) + r")\b", re.IGNORECASE)
APPROX = re.compile(
    r"(?:about|around|approximately|roughly|nearly|almost|some|~|\u2248)\s*$", re.IGNORECASE
)
YEARS = range(1900, 2101)
# A cell line holds one quantity and at most this many other characters ("20.0 Ah", "+18%").
CELL_EXTRA_CHARS = 6
PERCENT_CONTEXT = re.compile(r"%|percent|share|points", re.IGNORECASE)
MAX_GROUP = 16  # numbers of one group that pairs and runs are taken from
TABLE_GAP = 6  # lines between two rows of one table (a label and text cells)
CAPTION_LINES = 8  # lines above a table read as its caption and column headers
CAPTION_CHARS = 80  # a longer line above a table is prose, not its caption


@dataclass(frozen=True)
class Quantity:
    """A number as written: its digits' value, the precision it claims, and what marks it."""

    text: str
    value: float
    decimals: int
    percent: bool = False
    scale: float = 1.0
    approx_step: float | None = None  # "about 1,200": the rounding step it claims (100)

    @property
    def step(self) -> float:
        """The rounding step the written precision claims: 1 for "28", 0.1 for "27.6"."""
        return self.approx_step or 10.0**-self.decimals

    @property
    def label(self) -> str:
        """The normalised number ("1250", "12.5", "28%"), as reasons and notes show it."""
        text = f"{self.value:.{self.decimals}f}".rstrip("0").rstrip(".") if self.decimals else ""
        return (text or f"{self.value:.0f}") + ("%" if self.percent else "")

    @property
    def is_year(self) -> bool:
        return self.decimals == 0 and not self.percent and int(self.value) in YEARS

    def matches(self, value: float) -> bool:
        """True when `value`, rounded to this number's written precision, is this number."""
        return abs(abs(value) - self.value) <= self.step / 2 * (1 + 1e-9) + 1e-12

    def matches_quantity(self, other: Quantity) -> bool:
        """The same number: equal digits at this precision, or equal after scales ("391 thousand"
        and "391,000")."""
        return self.matches_scaled(other.value, other.scale)

    def matches_scaled(self, value: float, scale: float) -> bool:
        """`value` in units of `scale` is this number at its written precision: as written, or
        in plain units ("$138,000" from "287 thousand dollars" - "149 thousand dollars")."""
        if self.matches(value):
            return True
        return self.scale != scale and (
            abs(abs(value) * scale - self.value * self.scale)
            <= self.step * self.scale / 2 * (1 + 1e-9)
        )


def _quantity(match: re.Match[str], text: str) -> Quantity:
    digits = match["num"].replace(",", "")
    whole, _, fraction = digits.partition(".")
    decimals = len(fraction)
    approx_step = None
    if decimals == 0 and APPROX.search(text[max(0, match.start() - 16) : match.start()]):
        significant = whole.lstrip("0")
        zeros = min(len(significant) - len(significant.rstrip("0")), len(significant) - 2)
        approx_step = 10.0**zeros if zeros > 0 else None
    scale = SCALES.get(match["scale"] or "", 1.0)
    if match["scale"] in ("k", "m") and not match["cur"]:
        scale = 1.0  # "100 m" is metres; "$52.3m" is millions
    return Quantity(
        match.group(0).strip(), float(digits), decimals, bool(match["pct"]), scale, approx_step
    )


@lru_cache(maxsize=4096)
def quantities(text: str) -> tuple[Quantity, ...]:
    """The quantities of a text in reading order, digits and small number words ("three")."""
    found = [(m.start(), _quantity(m, text)) for m in QUANTITY.finditer(text)]
    for m in NUMBER_WORD.finditer(text):
        found.append((m.start(), Quantity(m.group(0), float(NUMBER_WORDS[m.group(0).lower()]), 0)))
    return tuple(q for _, q in sorted(found, key=lambda item: item[0]))


# ---------------------------------------------------------------------------------------------
# Groups: table rows, table columns and sentences
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """Numbers that belong together on a page, with the words that say what they are."""

    kind: str  # row | column | sentence
    context: str
    values: tuple[Quantity | None, ...]  # None: an empty cell ("-"), kept for column positions

    @property
    def numbers(self) -> list[Quantity]:
        return [q for q in self.values if q is not None][:MAX_GROUP]


EMPTY_CELL = re.compile(r"[-\u2013\u2014\u2212]|n/?a|N/?A")
SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=[A-Z\u2022(])|\s*\u2022\s*")


def _cell(line: str) -> Quantity | bool | None:
    """The quantity a table-cell line holds, None for an empty cell, False for any other line."""
    stripped = line.strip()
    if EMPTY_CELL.fullmatch(stripped):
        return None
    if stripped.endswith((".", ",", ";")):
        return False  # "1,315." ends a sentence wrapped onto its own line
    found = quantities(stripped)
    if len(found) != 1 or NUMBER_WORD.search(stripped):
        return False
    if not stripped.startswith(found[0].text):
        return False  # "LFP, 45 °C" is a label
    rest = stripped[len(found[0].text) :]
    return found[0] if len(re.sub(r"\s", "", rest)) <= CELL_EXTRA_CHARS else False


def _trailing_run(line: str) -> list[Quantity]:
    """The numbers ending a line that ends in two or more numbers with nothing but spaces
    between them (an OCR'd table row, its label first); else []."""
    run: list[re.Match[str]] = []
    end = len(line.rstrip())
    for match in reversed(list(QUANTITY.finditer(line))):
        if line[match.end() : end].strip():
            break
        run.insert(0, match)
        end = match.start()
    return [_quantity(m, line) for m in run] if len(run) >= 2 else []


@dataclass
class _Row:
    label: int  # index of the first label line (the lines up to `first` label the row)
    first: int  # index of the first line of the row's cells
    last: int
    values: tuple[Quantity | None, ...]


def _label_start(rows: list[_Row], first: int) -> int:
    """Where a row's label starts: after the previous row, at most TABLE_GAP lines back."""
    previous = rows[-1].last + 1 if rows else 0
    return max(previous, first - TABLE_GAP + 1, 0)


def _rows(lines: list[str]) -> tuple[list[_Row], list[str]]:
    """Table rows (runs of cell lines, or lines ending in two or more numbers) and prose lines."""
    rows: list[_Row] = []
    prose: list[str] = []
    cells: list[Quantity | None] = []
    for i, line in enumerate([*lines, ""]):
        cell = _cell(line) if i < len(lines) else False
        if cell is not False:
            cells.append(cell)
            continue
        if cells:
            first = i - len(cells)
            rows.append(_Row(_label_start(rows, first), first, i - 1, tuple(cells)))
            cells = []
        run = _trailing_run(line)
        if run:
            rows.append(_Row(i, i, i, tuple(run)))
        else:
            prose.append(line)
    return rows, prose


def _caption(lines: list[str], rows: list[_Row], index: int) -> str:
    """The lines above a table's first row, back to the previous row (its caption and headers,
    CAPTION_LINES at most)."""
    start = rows[index - 1].last + 1 if index else 0
    above: list[str] = []
    for line in reversed(lines[max(rows[index].label - CAPTION_LINES, start) : rows[index].label]):
        if len(line) > CAPTION_CHARS:
            break  # prose above the table
        above.insert(0, line)
    return " ".join(above)


def _label(lines: list[str], row: _Row) -> str:
    return " ".join(lines[row.label : row.first])


def page_groups(text: str) -> list[Group]:
    """The rows, columns and sentences of one page's text.

    A row is a run of consecutive lines that each hold one number alone (PyMuPDF's text layer puts
    every table cell on a line of its own; the line before the run is the row's label), or a line
    that ends in two or more numbers (OCR reads a table row into one line). Rows with the same
    number of cells, at most `TABLE_GAP` lines apart, make a table whose columns are groups too
    (a one-cell row only ever counts in a column). The rest is prose, split into sentences.
    """
    lines = text.splitlines()
    rows, prose = _rows(lines)
    contexts = [_label(lines, r) or lines[r.first] for r in rows]
    for row in rows:
        # "Non-revenue water (%)": the cells of a row so labelled are percentages.
        if row.first > 0 and row.first > row.label and PERCENT_CONTEXT.search(lines[row.first - 1]):
            row.values = tuple(q and dataclasses.replace(q, percent=True) for q in row.values)
    groups: list[Group] = []
    start = 0
    for end in range(1, len(rows) + 1):
        if (
            end == len(rows)
            or len(rows[end].values) != len(rows[start].values)
            or rows[end].first - rows[end - 1].last > TABLE_GAP
        ):
            table = rows[start:end]
            # The caption and headers above the table, and the first row's label (headers of
            # a table whose cells sit on lines of their own): what every row and column is of.
            caption = f"{_caption(lines, rows, start)} {contexts[start]}" if len(table) >= 2 else ""
            for row, context in zip(table, contexts[start:end], strict=True):
                if len(row.values) >= 2:
                    groups.append(Group("row", f"{context} {caption}", row.values))
            if len(table) >= 2:
                labels = " ".join(contexts[start:end])
                for j in range(len(table[0].values)):
                    column = tuple(r.values[j] for r in table)
                    groups.append(Group("column", f"{caption} {labels}", column))
            start = end
    for sentence in SENTENCE_END.split(" ".join(prose)):
        found = quantities(sentence)
        if len(found) >= 2:
            groups.append(Group("sentence", sentence, found))
    return groups


# ---------------------------------------------------------------------------------------------
# Derivations
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Arithmetic written out in an answer
# ---------------------------------------------------------------------------------------------

OPERATORS: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_NUM = re.sub(r"\?P<\w+>", "?:", QUANTITY.pattern)  # the same, without group names
_OP = r"(?:\s*[+*/\u00d7\u00f7\u2212]\s*|\s+[-\u2013x]\s+)"
_TERM = rf"(?:\(\s*)*(?:{_NUM})(?:\s*\))*"
EXPRESSION = rf"{_TERM}(?:{_OP}{_TERM})+"
EQUALS = r"\s*(?:=|\u2248|\u2243)\s*"
# "a + b = c", "(a - b) / b x 100 ≈ c", and "c = a + b"
STATED = re.compile(rf"(?P<expr>{EXPRESSION}){EQUALS}(?P<result>{_NUM})")
STATED_FIRST = re.compile(rf"(?P<result>{_NUM}){EQUALS}(?P<expr>{EXPRESSION})(?!{EQUALS})")
# "c (a / b)": a number followed by the arithmetic that gives it, in parentheses
EXPLAINED = re.compile(rf"(?P<result>{_NUM})\s*\((?P<expr>{EXPRESSION})\)")
# "from a to b, a c% increase" / "rose by c% from a to b": a change stated with its end points
CHANGE = r"(?:increase|rise|growth|gain|jump|decrease|decline|fall|drop|reduction|cut)"
FROM_TO = rf"from\s+(?P<a>{_NUM})\s+to\s+(?P<b>{_NUM})"
CHANGES = (
    re.compile(rf"{FROM_TO}\s*,?\s*(?:an?|or)\s+(?P<result>{_NUM})\s+{CHANGE}"),
    re.compile(rf"{FROM_TO}\s*,?\s*(?:an?|or)\s+{CHANGE}\s+of\s+(?P<result>{_NUM})"),
    re.compile(rf"\bby\s+(?P<result>{_NUM})\s+{FROM_TO}"),
)
MONTH = re.compile(r"\s*(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)", re.IGNORECASE)
MINUS_SIGNS = ("-", "\u2212")


def _first_quantity(text: str) -> Quantity:
    match = QUANTITY.search(text)
    assert match is not None, text  # the patterns above only capture text QUANTITY matches
    return _quantity(match, text)


@dataclass(frozen=True)
class WrittenArithmetic:
    """A calculation written in an answer, the values it may give and the result stated for it."""

    text: str
    values: tuple[float, ...]
    result: Quantity
    operands: tuple[Quantity, ...]

    @property
    def holds(self) -> bool:
        """The result equals a value at its written precision, or within 1% (the writer may
        have rounded a step on the way)."""
        tolerance = max(self.result.step / 2, abs(self.result.value) * 0.01) + 1e-9
        return any(abs(abs(v) - self.result.value) <= tolerance for v in self.values)


def _evaluate(
    expression: str, result: Quantity
) -> tuple[tuple[float, ...], tuple[Quantity, ...]] | None:
    """The values a written expression gives (as a fraction and x 100 for a percentage result)
    and its operands; None when it is not plain arithmetic or only spans years."""
    operands = [_quantity(m, expression) for m in QUANTITY.finditer(expression)]
    if not operands or all(q.is_year for q in operands):
        return None  # "2019 - 2023" is a span of years
    # Mixed scales ("$1.2M - $850K") are compared in units; otherwise as written.
    scaled = len({q.scale for q in (*operands, result)}) > 1
    values = iter(q.value * (q.scale if scaled else 1.0) for q in operands)

    def plain(match: re.Match[str]) -> str:
        sign = "-" if match["sign"] in MINUS_SIGNS else ""
        return f"({sign}{next(values)!r})"

    source = QUANTITY.sub(plain, expression).strip()
    while source.count("(") > source.count(")") and source.startswith("("):
        source = source[1:]  # "(1,512 - 1,250 = 262)": the bracket opens the sentence's aside
    source = re.sub(r"[\u00d7x]", "*", source).replace("\u00f7", "/")
    source = source.replace("\u2212", "-").replace("\u2013", "-")
    try:
        value = _walk(ast.parse(source.strip(), mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError):
        return None
    if scaled:
        value /= result.scale
    return ((value, value * 100) if result.percent else (value,)), tuple(operands)


def _walk(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _walk(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        return OPERATORS[type(node.op)](_walk(node.left), _walk(node.right))
    raise ValueError(f"not arithmetic: {ast.dump(node)}")


def written_arithmetic(text: str) -> list[WrittenArithmetic]:
    """Every calculation written out in a text: "a - b = c", "c = a - b", "c (a / b)", "from a
    to b, a c% increase", "rose by c from a to b"."""
    found: list[WrittenArithmetic] = []
    for pattern in (STATED, STATED_FIRST, EXPLAINED):
        for match in pattern.finditer(text):
            result = _first_quantity(match["result"])
            if pattern is EXPLAINED and result.is_year:
                continue  # "in 2023 (148,620 - 146,010)": the year is not the result
            evaluated = _evaluate(match["expr"], result)
            if evaluated is not None:
                values, operands = evaluated
                found.append(WrittenArithmetic(match.group(0).strip(), values, result, operands))
    for pattern in CHANGES:
        for match in pattern.finditer(text):
            if MONTH.match(text, match.end("a")) or MONTH.match(text, match.end("b")):
                continue  # "from 9 October to 31 May" names dates
            a, b, result = (_first_quantity(match[k]) for k in ("a", "b", "result"))
            if (a.is_year and b.is_year) or not a.value:
                continue
            values = [b.value - a.value]
            if result.percent:
                # "fell by 4.1% from 17.9% to 13.8%" may mean percentage points.
                values = [(b.value - a.value) / a.value * 100] + (values if a.percent else [])
            found.append(WrittenArithmetic(match.group(0).strip(), tuple(values), result, (a, b)))
    return found
