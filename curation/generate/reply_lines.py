"""The line reader of replies: `Q1:/A1:`-style lists, `**Question:**` markers, `### Question 1`
headings, with `R1:` rationale and `E1:` evidence lines; the reader of last resort, for replies
in none of the structured formats (generate/reply_formats.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from curation.generate.reply_text import (
    BULLET,
    FENCE,
    NUMBERED,
    QAItem,
    ReplyRead,
    clean_text,
    page_numbers,
)

# --- Question/answer lines -----------------------------------------------------------------

# A field marker: `Q1:`, `**Answer 2:**`, `1. **Question:**`, `- **Rationale:**`, `### Question 1`,
# `E1: pages 2, 3`. Unnumbered markers need a colon; a heading may have none.
MARKER = re.compile(
    r"^\s*(?P<heading>#{1,6}\s+)?(?:>\s*)?(?:(?:\d+[.)]|[-*+•])\s+)?(?P<open>\*\*|__|\*)?\s*"
    r"(?P<tag>question|answer|rationale|reasoning|reason|explanation|justification"
    r"|evidence(?:\s+(?:pages?|slides?))?|q|a|r|e)"
    r"\s*(?P<num>\d+)?\s*(?P<close>\*\*|__|\*)?\s*(?P<punct>[:.)])?\s*(?:\*\*|__|\*)?"
    r"\s*(?P<rest>.*)$",
    re.IGNORECASE,
)
FIELD_OF_TAG = {"q": "question", "a": "answer", "r": "rationale", "e": "evidence"}
# `... in Q3? **Answer:** 14 characters.` on one line.
INLINE_ANSWER = re.compile(
    r"(?<=[?.!*)\"])\s+(?:\*\*|__)?(?:answer|a)(?:\s*\d+)?\s*(?:\*\*|__)?\s*:\s*(?:\*\*|__)?\s*",
    re.IGNORECASE,
)
QUESTION_LINE = re.compile(r"^\s*(?:\d+[.)]\s+)?(?:\*\*|__)?(?P<q>[^*_\s].*\?)(?:\*\*|__)?\s*$")
RULE = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,})\s*$")
HEADING = re.compile(r"^\s*#{1,6}\s")


@dataclass
class _Fields:
    question: list[str]
    heading: bool = False  # opened by a heading (`### Question 1`): its text may follow
    answer: list[str] | None = None
    rationale: list[str] | None = None
    evidence: list[int] = field(default_factory=list)


def _marker(line: str) -> tuple[str, str, bool] | None:
    """(field, rest of the line, opened by a heading) when the line opens a field."""
    match = MARKER.match(line)
    if not match:
        return None
    rest = match.group("rest").strip()
    punct, num = match.group("punct"), match.group("num")
    if punct is None:
        # `### Question 1`, `## A1`, `**Answer**`: a bare marker, its text on the next lines.
        bare = match.group("heading") or num or (match.group("open") and match.group("close"))
        if rest or not bare:
            return None
    elif num is None and punct != ":":
        return None
    if match.group("open") and not match.group("close"):
        rest = re.sub(r"(?:\*\*|__|\*)\s*$", "", rest)  # `**Q1: What ...?**`
    tag = match.group("tag").lower()
    name = "rationale" if tag in ("explanation", "justification") else FIELD_OF_TAG[tag[0]]
    return name, rest, bool(match.group("heading"))


class QALines:
    """Reads `Q1:/A1:`-style replies line by line; `R1:` and `E1:` lines add the rationale and
    the evidence pages. Prose around the pairs (a preamble, a closing remark) is left out."""

    def __init__(self, cut_off: bool = False) -> None:
        self.cut_off = cut_off
        self.result = ReplyRead()
        self.pair: _Fields | None = None
        self.open: str | None = None  # the field that the next plain line continues
        self.gap = False  # a blank line since the last text
        self.candidate: str | None = None  # a question line without a marker (`1. **Why?**`)
        # Prose after a blank line inside an answer or rationale: its next paragraph when a
        # marker follows, a closing remark ("Let me know...") when the reply ends there.
        self.pending: tuple[list[str], list[str]] | None = None

    def read(self, text: str) -> ReplyRead:
        """The pairs and errors of a whole reply."""
        for line in text.splitlines():
            self._line(line)
        if self.pair is not None and self.cut_off and (self.open or self.pending):
            question = clean_text(self.pair.question)
            self.result.errors.append(
                f"reply cut off at max_tokens in this pair: {question[:80]!r}"
            )
        else:
            self._close()
        return self.result

    def _line(self, line: str) -> None:
        if not line.strip():
            self.gap = True
            return
        marker = _marker(line)
        name = marker[0] if marker else None
        if name in ("rationale", "evidence") and (self.pair is None or self.pair.answer is None):
            name = None  # `R:` or `E:` before any answer is plain text
        if name is None and self.pending is not None and not self.gap:
            self.pending[1].append(line)
        elif name is None and (RULE.match(line) or HEADING.match(line) or FENCE.match(line)):
            # `---`, `## Pair 2`, a code fence: never part of a question or an answer
            self.open, self.candidate, self.pending = None, None, None
        elif name is None:
            self._text(line)
        else:
            if self.pending is not None:  # the paragraph went on the answer: a marker follows
                target, paragraph = self.pending
                target.extend(paragraph)
                self.pending = None
            if name == "question":
                self._question(marker[1], marker[2])
            elif name == "answer":
                self._answer(marker[1])
            else:
                self._extra(name, marker[1])
            self.candidate = None  # a question without a marker comes right before its answer
        self.gap = False

    def _question(self, rest: str, heading: bool) -> None:
        self._close()
        question, *answer = INLINE_ANSWER.split(rest, maxsplit=1)
        self.pair = _Fields(question=[question], heading=heading and not question)
        self.open = "question"
        if answer:
            self.pair.answer, self.open = answer, "answer"

    def _answer(self, rest: str) -> None:
        pair = self.pair
        if pair is not None and pair.answer is None:
            pair.answer, self.open = [rest], "answer"
            return
        # No open question: the question is a line without a marker just above
        # (`1. **What ...?**` then `- Answer: ...`), maybe read as the last answer's tail.
        question = self.candidate
        tail = pair.answer if pair is not None and self.open == "answer" else None
        if question is None and tail and QUESTION_LINE.match(tail[-1]):
            question = QUESTION_LINE.match(tail.pop()).group("q")
        if question is None:
            self.result.errors.append(f"answer without a question: {clean_text([rest])[:80]!r}")
            self.open = None
            return
        self._close()
        self.pair = _Fields(question=[question], answer=[rest])
        self.open, self.candidate = "answer", None

    def _extra(self, name: str, rest: str) -> None:
        if name == "evidence":
            self.pair.evidence = page_numbers(rest)
        else:
            self.pair.rationale = [rest]
        self.open = name

    def _text(self, line: str) -> None:
        pair, stripped = self.pair, line.strip()
        structural = stripped.startswith("|") or bool(
            BULLET.match(stripped) or NUMBERED.match(stripped)
        )
        if pair is not None and self.open == "question":
            if not self.gap or not "".join(pair.question).strip():
                pair.question.append(line)
                return
            if pair.heading:  # `### Question 1`, the question, a blank line, then the answer
                pair.answer, self.open = [line], "answer"
                return
        elif pair is not None and self.open in ("answer", "rationale"):
            lines = pair.answer if self.open == "answer" else pair.rationale
            # After a blank line a list or a table goes on; prose waits for what follows.
            if not self.gap or structural or not "".join(lines).strip():
                lines.append(line)
                return
            if not QUESTION_LINE.match(line):
                self.pending, self.open = (lines, [line]), None
                return
        elif pair is not None and self.open == "evidence" and not self.gap:
            return
        self.open = None
        match = QUESTION_LINE.match(line)
        self.candidate = match.group("q") if match else None

    def _close(self) -> None:
        pair, self.pair = self.pair, None
        if pair is None:
            return
        question = clean_text(pair.question)
        answer = clean_text(pair.answer or [])
        if not answer:
            self.result.errors.append(
                f"question without an answer (reply cut off?): {question[:80]!r}"
            )
            return
        self.result.items.append(
            QAItem(
                question=question,
                answer=answer,
                rationale=clean_text(pair.rationale or []) or None,
                evidence_pages=pair.evidence,
            )
        )
