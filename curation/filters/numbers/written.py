"""Arithmetic written out in an answer: "a - b = c", "c = a - b", "c (a / b)", "from a to b, a c%
increase". Each calculation is evaluated (plain arithmetic only, through Python's ast, never
eval) and compared with the result the answer states for it.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from curation.filters.numbers.quantity import QUANTITY, Quantity, read_quantity

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
    return read_quantity(match, text)


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
    operands = [read_quantity(m, expression) for m in QUANTITY.finditer(expression)]
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
