"""Reply text: the cleaning every reader applies to a reply's fields (markdown emphasis removed,
whitespace collapsed, bullets as `- item` lines, page numbers read as written), and the
pydantic model one question-answer item of a reply is validated against (`QAItem`), with
what a reader returns (`ReplyRead`). The readers of the reply formats build on it
(generate/reply_formats.py, generate/reply_lines.py); parse.py turns their items into Pairs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, field_validator


class QAItem(BaseModel):
    """One question-answer pair as an engine returns it (texts cleaned of markdown emphasis)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    question: str = Field(alias="q")
    answer: str = Field(alias="a")
    rationale: str | None = None
    evidence_pages: list[int] = Field(default_factory=list)

    @field_validator("question", "answer", "rationale", mode="before")
    @classmethod
    def _clean(cls, value: object) -> object:
        if isinstance(value, list):  # an answer given as a JSON list reads as a bullet list
            return clean_text([f"- {item}" for item in value])
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return clean_text(value.splitlines()) if isinstance(value, str) else value

    @field_validator("evidence_pages", mode="before")
    @classmethod
    def _pages(cls, value: object) -> object:
        if value is None:
            return []
        if isinstance(value, int | str):
            value = [value]
        if isinstance(value, list):
            return page_numbers(" ".join(str(v) for v in value))
        return value


@dataclass
class ReplyRead:
    """The items one reader found in a reply, and what it could not read (each with its reason)."""

    items: list[QAItem] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# --- Text cleaning -------------------------------------------------------------------------

# Spans whose characters are not markdown: code, and LaTeX (a `$...$` only with TeX inside,
# so that prices such as "$4.5M ... $5.8M" are not taken for math).
PROTECTED = re.compile(r"`[^`\n]*`|\$\$.+?\$\$|\\\(.+?\\\)|\\\[.+?\\\]|\$[^$\n]*[\\^_{}][^$\n]*\$")
EMPHASIS = (
    re.compile(r"(?<![\w*])\*{1,3}(?=[^\s*])(.+?)(?<=[^\s*])\*{1,3}(?![\w*])"),
    # `__init__` and other dunder names are code, not bold.
    re.compile(r"(?<!\w)__(?=\S)(?![A-Za-z]\w*__(?!\w))(.+?)(?<=\S)__(?!\w)"),
    re.compile(r"(?<!\w)_(?=[^\s_])(.+?)(?<=[^\s_])_(?!\w)"),
)
BULLET = re.compile("^[*•+\\-\u2013]\\s+")  # *, •, +, -, en dash
NUMBERED = re.compile(r"^\d+[.)]\s")


def strip_emphasis(line: str) -> str:
    pieces, last = [], 0
    for match in PROTECTED.finditer(line):
        pieces += [_unemphasise(line[last : match.start()]), match.group()]
        last = match.end()
    return "".join([*pieces, _unemphasise(line[last:])])


def _unemphasise(text: str) -> str:
    for pattern in EMPHASIS:
        text = pattern.sub(r"\1", text)
    return text


def _is_structural(line: str) -> bool:
    return line.startswith(("- ", "|")) or bool(NUMBERED.match(line))


def clean_text(lines: list[str]) -> str:
    """Reply lines as one text: emphasis removed, whitespace collapsed, prose lines joined,
    bullets as `- item` lines, numbered items and table rows kept one per line."""
    out: list[str] = []
    for raw in lines:
        line = " ".join(raw.split())
        if not line:
            continue
        line = BULLET.sub("- ", line)
        line = strip_emphasis(line).strip()
        if out and not _is_structural(line) and not out[-1].startswith("|"):
            out[-1] = f"{out[-1]} {line}"
        else:
            out.append(line)
    return "\n".join(out)


PAGE_RANGE = re.compile("(\\d+)\\s*[-\u2013]\\s*(\\d+)|(\\d+)")  # 2-4, 2 to 4 with an en dash, or 2
PARENTHESES = re.compile(r"\([^)]*\)")


def page_numbers(text: str) -> list[int]:
    """Page numbers as written ("pages 2, 3", "[1, 2]", "Slides 2 and 4", "2-4"), sorted."""
    pages: set[int] = set()
    for low, high, single in PAGE_RANGE.findall(PARENTHESES.sub(" ", text)):
        if single:
            pages.add(int(single))
        elif int(high) - int(low) <= 50:
            pages.update(range(int(low), int(high) + 1))
    return sorted(pages)


# A code fence (```yaml, ~~~): a YAML block's edges; never part of a question or an answer.
FENCE = re.compile(r"^\s*(?:```|~~~)\s*([\w+-]*)\s*$")
