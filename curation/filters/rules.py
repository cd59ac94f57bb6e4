"""Rule filters: empty or abnormal fields, forbidden patterns (the Docmatix list), repeated
questions, answers that echo their question, InternVL's anomaly heuristics."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, PrivateAttr, field_validator

from curation.config import StrictModel
from curation.filters.base import Filter, PairContext
from curation.filters.tokens import content_words, numbers, stem
from curation.schema import Decision

PairField = Literal["question", "answer", "rationale"]


def field_text(pair: PairContext, name: str) -> str:
    return getattr(pair, name) or ""


class NonEmptyFilter(Filter):
    """Reject a pair whose field is empty or shorter than `min_chars` after trimming."""

    type: ClassVar[str] = "non_empty"
    fields: list[PairField] = Field(default_factory=lambda: ["question", "answer"])
    min_chars: int = Field(1, ge=1)

    def decide(self, pairs: list[PairContext]) -> list[Decision]:
        decisions = []
        for pair in pairs:
            short = next(
                (f for f in self.fields if len(field_text(pair, f).strip()) < self.min_chars), None
            )
            decisions.append(
                self.reject(f"{short} is empty or under {self.min_chars} chars")
                if short
                else self.keep()
            )
        return decisions


class PatternFilter(Filter):
    """Reject a pair when a field matches any named regex (Docmatix: brackets, IPs, `word.word`...)."""

    type: ClassVar[str] = "patterns"
    fields: list[PairField] = Field(default_factory=lambda: ["question", "answer"])
    patterns: dict[str, str] = Field(min_length=1)
    ignore_case: bool = False
    _compiled: list[tuple[str, re.Pattern[str]]] = PrivateAttr(default_factory=list)

    @field_validator("patterns")
    @classmethod
    def _valid_regexes(cls, patterns: dict[str, str]) -> dict[str, str]:
        for name, pattern in patterns.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern '{name}' is not a valid regex: {exc}") from exc
        return patterns

    def model_post_init(self, context: object) -> None:
        flags = re.IGNORECASE if self.ignore_case else 0
        self._compiled = [(name, re.compile(p, flags)) for name, p in self.patterns.items()]

    def decide(self, pairs: list[PairContext]) -> list[Decision]:
        return [self._decide_one(pair) for pair in pairs]

    def _decide_one(self, pair: PairContext) -> Decision:
        for field_name in self.fields:
            text = field_text(pair, field_name)
            for name, regex in self._compiled:
                match = regex.search(text)
                if match:
                    return self.reject(f"{field_name} has {name}: {match.group(0)[:40]!r}")
        return self.keep()


class UnitDuplicateFilter(Filter):
    """Reject a pair whose question (case and spacing ignored) was already asked in its unit."""

    type: ClassVar[str] = "unit_duplicates"

    def decide(self, pairs: list[PairContext]) -> list[Decision]:
        seen: set[tuple[str, str]] = set()
        decisions = []
        for pair in pairs:
            key = (pair.unit_id, " ".join(pair.question.lower().split()))
            decisions.append(
                self.reject("question repeats an earlier one") if key in seen else self.keep()
            )
            seen.add(key)
        return decisions


class FieldLimits(StrictModel):
    """Length limits for one field, in characters and in words (None: no upper limit)."""

    min_chars: int = Field(1, ge=0)
    max_chars: int | None = Field(None, ge=1)
    min_words: int = Field(0, ge=0)
    max_words: int | None = Field(None, ge=1)
    optional: bool = Field(False, description="An empty value passes (e.g. a missing rationale).")


class LengthFilter(Filter):
    """Reject a pair whose field is empty, too short or too long (InternVL: abnormal lengths)."""

    type: ClassVar[str] = "length"
    fields: dict[PairField, FieldLimits] = Field(
        default_factory=lambda: {
            "question": FieldLimits(min_chars=8, max_chars=1000),
            "answer": FieldLimits(min_chars=1, max_chars=4000),
        },
        min_length=1,
    )

    def decide(self, pairs: list[PairContext]) -> list[Decision]:
        return [self._decide_one(pair) for pair in pairs]

    def _decide_one(self, pair: PairContext) -> Decision:
        for name, limits in self.fields.items():
            text = field_text(pair, name).strip()
            if not text and limits.optional:
                continue
            chars, words = len(text), len(text.split())
            if chars < limits.min_chars:
                return self.reject(f"{name} has {chars} chars, under {limits.min_chars}")
            if limits.max_chars is not None and chars > limits.max_chars:
                return self.reject(f"{name} has {chars} chars, over {limits.max_chars}")
            if words < limits.min_words:
                return self.reject(f"{name} has {words} words, under {limits.min_words}")
            if limits.max_words is not None and words > limits.max_words:
                return self.reject(f"{name} has {words} words, over {limits.max_words}")
        return self.keep()


class AnswerEchoFilter(Filter):
    """Reject an answer that only repeats its question: no content word the question lacks."""

    type: ClassVar[str] = "answer_echo"
    min_new_words: int = Field(
        1, ge=1, description="Content words (yes/no/not included) the answer must add."
    )

    def decide(self, pairs: list[PairContext]) -> list[Decision]:
        decisions = []
        for pair in pairs:
            asked = set(map(stem, content_words(pair.question)))
            asked_numbers = set(numbers(pair.question))
            added = [
                w for w in content_words(pair.answer, keep_polarity=True) if stem(w) not in asked
            ]
            added += [n for n in numbers(pair.answer) if n not in asked_numbers]
            decisions.append(
                self.reject(f"answer only repeats the question ({len(added)} new words)")
                if len(added) < self.min_new_words
                else self.keep()
            )
        return decisions


SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")
# A markdown table's separator row ("|------|:---:|") or a rule ("---"): markup, not a run of
# characters nor a loop.
MARKDOWN_RULE = re.compile(r"^[ \t|:]*-{3,}[ \t|:-]*$", re.MULTILINE)


def without_markdown_rules(text: str) -> str:
    """The text with its markdown table separator rows and horizontal rules left out."""
    return MARKDOWN_RULE.sub("", text) if "---" in text else text


class AnomalyFilter(Filter):
    """InternVL's heuristic rules: abnormal sentence lengths, long runs of zeros or of one
    character (a markdown table's dashed separator row is not one), many duplicate lines
    (InternVL 2.5 report, data filtering)."""

    type: ClassVar[str] = "anomalies"
    fields: list[PairField] = Field(default_factory=lambda: ["question", "answer"])
    max_sentence_words: int | None = Field(
        120, ge=1, description="A sentence longer than this is a run-on, not prose."
    )
    max_zero_run: int | None = Field(8, ge=2, description="Longest run of '0' digits allowed.")
    max_char_run: int | None = Field(
        12, ge=2, description="Longest run of one non-space character allowed."
    )
    max_dup_line_frac: float | None = Field(
        0.3, ge=0, le=1, description="Share of non-empty lines that repeat an earlier line."
    )
    min_lines: int = Field(3, ge=2, description="The duplicate-line rule needs this many lines.")
    _zero_run: re.Pattern[str] | None = PrivateAttr(None)
    _char_run: re.Pattern[str] | None = PrivateAttr(None)

    def model_post_init(self, context: object) -> None:
        if self.max_zero_run:
            self._zero_run = re.compile(f"0{{{self.max_zero_run + 1},}}")
        if self.max_char_run:
            self._char_run = re.compile(f"(\\S)\\1{{{self.max_char_run},}}")

    def decide(self, pairs: list[PairContext]) -> list[Decision]:
        decisions = []
        for pair in pairs:
            problem = next(
                (
                    f"{name} {found}"
                    for name in self.fields
                    if (found := self._anomaly(field_text(pair, name)))
                ),
                None,
            )
            decisions.append(self.reject(problem) if problem else self.keep())
        return decisions

    def _anomaly(self, text: str) -> str | None:
        zero_run, char_run = self._zero_run, self._char_run
        if zero_run and (match := zero_run.search(text)):
            return f"has a run of {len(match.group(0))} zeros"
        if char_run and (match := char_run.search(without_markdown_rules(text))):
            return f"has a run of {len(match.group(0))} {match.group(1)!r}"
        limit = self.max_sentence_words
        if limit and len(text.split()) > limit:  # shorter texts cannot hold a longer sentence
            longest = max(len(s.split()) for s in SENTENCE_END.split(text))
            if longest > limit:
                return f"has a sentence of {longest} words, over {limit}"
        if self.max_dup_line_frac is not None and text.count("\n") + 1 >= self.min_lines:
            lines = [" ".join(line.split()).lower() for line in text.splitlines() if line.strip()]
            if len(lines) >= self.min_lines:
                share = 1 - len(set(lines)) / len(lines)
                if share > self.max_dup_line_frac:
                    return f"has {share:.0%} duplicate lines"
        return None
