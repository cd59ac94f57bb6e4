"""Groups: the numbers that belong together on one page's text, a table row, a table column or a
prose sentence, with the words that say what they are (a row's label, a table's caption and
headers, the sentence itself). The derivation search pairs numbers only within a group.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from curation.filters.numbers.quantity import (
    NUMBER_WORD,
    QUANTITY,
    Quantity,
    quantities,
    read_quantity,
)

# A cell line holds one quantity and at most this many other characters ("20.0 Ah", "+18%").
CELL_EXTRA_CHARS = 6
PERCENT_CONTEXT = re.compile(r"%|percent|share|points", re.IGNORECASE)
MAX_GROUP = 16  # numbers of one group that pairs and runs are taken from
TABLE_GAP = 6  # lines between two rows of one table (a label and text cells)
CAPTION_LINES = 8  # lines above a table read as its caption and column headers
CAPTION_CHARS = 80  # a longer line above a table is prose, not its caption


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
    return [read_quantity(m, line) for m in run] if len(run) >= 2 else []


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
