"""Answer spans for answer-first generation: a sentence or clause of one page, chosen per unit.

Question generation on SQuAD starts from the answer: the pipeline picks a span of the page and
a model writes only the question that span answers, so the answer is the page's own text. A
small model can do that where it cannot write grounded pairs itself. A span is one sentence
(or, when a sentence is long, one `;`-clause of it) or one bullet item, never text from two
pages; it is preferred when it holds a number, a name or a defined term, and when it does not
open with a pronoun whose referent is in an earlier sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from curation.seeding import weighted_pick

MIN_CHARS = 30
MAX_CHARS = 160
MIN_WORDS = 5
BULLET = re.compile("^[\u2022\u25aa\u25cf\\-*\u2013]\\s+")
NUMBERED = re.compile(r"^\d{1,2}[.)]\s+")
SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z])")
# A period after these ends no sentence: "Dr. Vasquez", "Fig. 2", "e.g. Paris", "Feb. 27".
ABBREVIATIONS = frozenset(
    {"dr", "mr", "mrs", "ms", "st", "no", "nos", "fig", "figs", "vol", "pp", "ca", "approx"}
    | {"e.g", "i.e", "etc", "vs", "inc", "ltd", "co", "corp", "dept", "est", "a.m", "p.m", "u.s"}
    | {"jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"}
)
NUMBER = re.compile(r"\d")
# A capitalised word inside a sentence (not after a colon: "NOTE: Range ...").
NAME = re.compile(r"(?<=[^.:!?\s]\s)[\"'(]?[A-Z][\w'\u2019-]*")
DEFINED = re.compile(
    r"\b(?:means|is defined as|refers to|is called|are called|known as|stands for)\b"
    r"|\([A-Z][A-Za-z0-9]{1,9}\)"
)
PRONOUN_START = re.compile(r"^(?:It|Its|This|These|That|Those|They|Their|He|She|His|Her)\b")


@dataclass(frozen=True)
class Span:
    """A span of one page: its text as the page prints it, and its page's number as prompts
    show pages (1-based)."""

    text: str
    page: int

    def self_contained(self) -> bool:
        """Whether the span opens a sentence of its own: a capital or a digit, not a pronoun
        (a clause after a `;` or "They ..." leans on what came before)."""
        return opens_sentence(self.text) and not PRONOUN_START.match(self.text)

    def features(self) -> int:
        """How many of number, name and defined term the span holds (0-3)."""
        return sum(bool(pattern.search(self.text)) for pattern in (NUMBER, NAME, DEFINED))


def text_runs(text: str) -> list[tuple[str, bool]]:
    """A page's text as runs of running text, each with whether it is a one-line bullet item
    (a slide's point, whole without a full stop). A PDF's text layer breaks lines where the
    page does: lines are joined until a short line (a paragraph's last line, a heading, a table
    cell), a list item or a line of page furniture (one with a `|`: "Owner's Manual | Page 3
    of 3") ends the run."""
    lines = [line.strip() for line in text.splitlines()]
    widths = sorted(len(line) for line in lines if line)
    if not widths:
        return []
    full = 0.7 * widths[int(0.8 * (len(widths) - 1))]  # about a full line's width
    runs: list[tuple[list[str], bool]] = []
    current: list[str] | None = None
    for line in lines:
        if "|" in line or not line:
            current = None
            continue
        bullet = BULLET.match(line)
        if current is None or bullet or NUMBERED.match(line):
            current = [line[bullet.end() :] if bullet else line]
            runs.append((current, bool(bullet)))
        else:
            current.append(line)
        if len(line) < full:
            current = None
    return [(join_lines(parts), bullet and len(parts) == 1) for parts, bullet in runs]


def join_lines(lines: list[str]) -> str:
    """Lines of one run as one string: a word hyphenated at a line's end stays joined."""
    text = ""
    for line in filter(None, lines):
        glue = "" if not text or (text.endswith("-") and line[:1].islower()) else " "
        text += glue + line
    return text


def sentences(run: str) -> list[str]:
    """A run of text split into sentences (a period after an abbreviation ends none)."""
    parts, start = [], 0
    for match in SENTENCE_END.finditer(run):
        words = run[start : match.start()].split()
        last = words[-1].rstrip(".\"')]").lower() if words else ""
        if last in ABBREVIATIONS or (len(last) == 1 and last.isalpha()):
            continue
        parts.append(run[start : match.start()].strip())
        start = match.end()
    parts.append(run[start:].strip())
    return [part for part in parts if part]


def opens_sentence(text: str) -> bool:
    return text[:1].isupper() or text[:1].isdigit()


def candidates(texts: list[str], pages: list[int]) -> list[Span]:
    """Every span of a unit that fits: a whole sentence (opening with a capital or a digit,
    ending with its stop: not a fragment a page break, a heading or a table cut) or a bullet
    item; a sentence over MAX_CHARS gives its `;`-clauses instead."""
    found = []
    for page, text in zip(pages, texts, strict=True):
        for run, bullet in text_runs(text):
            for sentence in [run] if bullet else sentences(run):
                if not bullet and not (opens_sentence(sentence) and sentence[-1] in ".!?"):
                    continue
                parts = [sentence] if len(sentence) <= MAX_CHARS else sentence.split("; ")
                found += [
                    Span(part, page + 1)
                    for part in parts
                    if MIN_CHARS <= len(part) <= MAX_CHARS and len(part.split()) >= MIN_WORDS
                ]
    return found


def choose_span(texts: list[str], pages: list[int], seed: int, unit_id: str) -> Span | None:
    """The answer span of a unit, the same on every run for a seed and unit id; None when its
    pages hold no sentence that fits. Drawn among the spans with the most of (a number, a name
    or a defined term; not opening with a pronoun), weighted by how many of the three it holds."""
    spans = candidates(texts, pages)
    tiers = (
        [s for s in spans if s.features() and s.self_contained()],
        [s for s in spans if s.features()],
        spans,
    )
    pool = next((tier for tier in tiers if tier), [])
    if not pool:
        return None
    return weighted_pick([(span, 1 + span.features()) for span in pool], "span", seed, unit_id)
