"""A number as written: the `Quantity` of a match (its value, the precision its digits claim, a
percent sign, a scale such as "million", an "about" that widens its step), and `quantities`, the
numbers of a text in reading order, small number words ("three") included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from curation.tokens import NUMBER_WORDS

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


def read_quantity(match: re.Match[str], text: str) -> Quantity:
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
    found = [(m.start(), read_quantity(m, text)) for m in QUANTITY.finditer(text)]
    for m in NUMBER_WORD.finditer(text):
        found.append((m.start(), Quantity(m.group(0), float(NUMBER_WORDS[m.group(0).lower()]), 0)))
    return tuple(q for _, q in sorted(found, key=lambda item: item[0]))
