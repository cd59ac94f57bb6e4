"""Rule filters: empty or abnormal fields, forbidden patterns (the Docmatix list), repeated
questions, answers that echo their question, reply labels left in the text, a chat assistant's
lines, InternVL's anomaly heuristics."""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from typing import ClassVar, Literal

from pydantic import Field, PrivateAttr, field_validator

from curation.config import StrictModel
from curation.filters.base import Filter
from curation.schema import Decision, Pair
from curation.tokens import (
    POLARITY,
    STOPWORDS,
    content_words,
    numbers,
    plain_words,
    stem,
)

PairField = Literal["question", "answer", "rationale"]


def field_text(pair: Pair, name: str) -> str:
    return getattr(pair, name) or ""


class NonEmptyFilter(Filter):
    """Reject a pair whose field is empty or shorter than `min_chars` after trimming."""

    type: ClassVar[str] = "non_empty"
    fields: list[PairField] = Field(default_factory=lambda: ["question", "answer"])
    min_chars: int = Field(1, ge=1)

    def decide(self, pairs: list[Pair]) -> list[Decision]:
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

    def decide(self, pairs: list[Pair]) -> list[Decision]:
        return [self._decide_one(pair) for pair in pairs]

    def _decide_one(self, pair: Pair) -> Decision:
        for field_name in self.fields:
            text = field_text(pair, field_name)
            for name, regex in self._compiled:
                match = regex.search(text)
                if match:
                    return self.reject(self.reason(field_name, name, match.group(0)))
        return self.keep()

    def reason(self, field_name: str, pattern: str, matched: str) -> str:
        return f"{field_name} has {pattern}: {matched[:40]!r}"


class UnitDuplicateFilter(Filter):
    """Reject a pair whose question was already asked in its unit: case, spacing and a leading
    reply label or number ("B1:", "C1:", "2.") ignored, so a loop that asks one question under
    successive labels keeps the first."""

    type: ClassVar[str] = "unit_duplicates"

    def decide(self, pairs: list[Pair]) -> list[Decision]:
        from curation.filters.dedup import without_prefix

        seen: set[tuple[str, str]] = set()
        decisions = []
        for pair in pairs:
            key = (pair.unit.unit_id, " ".join(without_prefix(pair.question).lower().split()))
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

    def decide(self, pairs: list[Pair]) -> list[Decision]:
        return [self._decide_one(pair) for pair in pairs]

    def _decide_one(self, pair: Pair) -> Decision:
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


INTERROGATIVE_LIST = "what which who whom whose where when why how"
INTERROGATIVES = frozenset(INTERROGATIVE_LIST.split())


def near_echo(question: str, answer: str) -> str | None:
    """The word an answer swapped into its question when it is the question with one word
    changed ("What is the capacity of the truck?" to "... of the bike?"), or None. Swapping the
    question word for the answer ("Who signed it?" -> "Okafor signed it") is an answer, and so is
    a yes or no ("Was it closed?" -> "It was not closed")."""
    asked, said = plain_words(question), plain_words(answer)
    if len(asked) < 4 or len(said) != len(asked):
        return None
    if sum(a != b for a, b in zip(asked, said, strict=True)) != 1:
        return None  # the only echo found below is one word swapped in place; skip the matcher
    ops = SequenceMatcher(a=asked, b=said, autojunk=False).get_opcodes()
    changed = [op for op in ops if op[0] != "equal"]
    if len(changed) != 1:
        return None
    tag, i1, i2, j1, j2 = changed[0]
    old, new = asked[i1:i2], said[j1:j2]
    if tag != "replace" or len(old) != 1 or len(new) != 1:
        return None
    if old[0] in INTERROGATIVES or new[0] in POLARITY or new[0] in STOPWORDS:
        return None
    return new[0]


class AnswerEchoFilter(Filter):
    """Reject an answer that only repeats its question: no content word the question lacks, or
    the question itself with one word changed (a near-echo: it asks instead of answering)."""

    type: ClassVar[str] = "answer_echo"
    min_new_words: int = Field(
        1, ge=1, description="Content words (yes/no/not included) the answer must add."
    )
    near_echoes: bool = Field(
        True, description="Also reject the question repeated with one word changed."
    )

    def decide(self, pairs: list[Pair]) -> list[Decision]:
        decisions = []
        for pair in pairs:
            asked = set(map(stem, content_words(pair.question)))
            asked_numbers = set(numbers(pair.question))
            added = [
                w for w in content_words(pair.answer, keep_polarity=True) if stem(w) not in asked
            ]
            added += [n for n in numbers(pair.answer) if n not in asked_numbers]
            swapped = near_echo(pair.question, pair.answer) if self.near_echoes else None
            if len(added) < self.min_new_words:
                decisions.append(
                    self.reject(f"answer only repeats the question ({len(added)} new words)")
                )
            elif swapped:
                decisions.append(
                    self.reject(f"answer repeats the question with one word changed ({swapped!r})")
                )
            else:
                decisions.append(self.keep())
        return decisions


# A reply label a model numbers its pairs with ("B1:", "C12:", "**Q3:**"): one capital and one or
# two digits before a colon, not inside a word, a time ("10:30") or a ratio.
REPLY_LABEL = re.compile(r"(?<![\w/.-])([A-Z]\d{1,2}):(?!\d)")
LEADING_LABEL = re.compile(r"^\W*([A-Z]\d{1,2})\s*[:.)](?!\d)")
# Where a label opens a sentence (the field's start, after a sentence's end or a line break): there
# it numbers what follows ("... HX-4. B1: The cells did not..."), unlike one a sentence uses ("In
# cell B1: the top left").
SENTENCE_START = re.compile(r"(?:^|[.!?][\"')\]]*\s+|\n)\W*$")


def printed_on(label: str, texts: list[str]) -> bool:
    """Whether the unit's pages print this label as a word of their own (a quarter "Q3", a table
    row "B2"): then it is the document's, not the model's numbering."""
    word = re.compile(rf"(?<![\w]){re.escape(label)}(?!\w)")
    return any(word.search(text) for text in texts)


class ReplyLabelFilter(Filter):
    """Reject reply labels left in a pair: a question that starts with one ("B1: How many..."),
    an answer or question that runs on through two or more ("... B1: ... B2: ..."), one that
    opens a sentence ("... HX-4. B1: The cells did not ..."), or the same clause said again
    after a label. A label the unit's pages print themselves (quarters Q1-Q4,
    a table's row labels) is the document's and passes."""

    type: ClassVar[str] = "reply_labels"
    fields: list[PairField] = Field(default_factory=lambda: ["question", "answer"])
    max_labels: int = Field(1, ge=0, description="Labels one field may hold (more is a loop).")

    def decide(self, pairs: list[Pair]) -> list[Decision]:
        return [self._decide_one(pair) for pair in pairs]

    def _decide_one(self, pair: Pair) -> Decision:
        lead = LEADING_LABEL.match(pair.question) if "question" in self.fields else None
        if lead and not printed_on(lead.group(1), pair.unit.texts):
            return self.reject(
                f"question starts with the reply label {lead.group(1)!r}: the model's "
                "numbering, not part of the question"
            )
        for name in self.fields:
            text = field_text(pair, name)
            found = [
                m for m in REPLY_LABEL.finditer(text) if not printed_on(m.group(1), pair.unit.texts)
            ]
            if not found:
                continue
            labels = ", ".join(dict.fromkeys(m.group(1) for m in found))
            if len(found) > self.max_labels:
                return self.reject(f"{name} runs on through reply labels ({labels}): a loop")
            clauses = [" ".join(plain_words(c)) for c in REPLY_LABEL.split(text)[::2]]
            clauses = [c for c in clauses if c]
            if len(clauses) != len(set(clauses)):
                return self.reject(f"{name} says the same thing again after the label {labels}")
            opening = next((m for m in found if SENTENCE_START.search(text, 0, m.start())), None)
            if opening:
                return self.reject(
                    f"{name} goes on after the reply label {opening.group(1)!r} that opens a "
                    "sentence: the model's next pair"
                )
        return self.keep()


# What a chat assistant says to its user, not what a document says: as a question or an answer
# it is a line the model wrote out of its chat habit.
BOILERPLATE = {
    "offer_of_help": r"\b(?:how|what) (?:can|may|could) I (?:help|assist|do for) you\b",
    "assistant_self": r"\bI(?:['\u2019]m| am)(?: just)? (?:here to (?:help|assist)|happy to help|"
    r"an AI|a language model|an? (?:AI |virtual |helpful )?assistant)\b",
    "as_an_ai": r"\bas an? (?:AI|artificial intelligence|language model|assistant)\b",
    "sure_here": r"^\W*(?:sure|certainly|of course|absolutely|great)\b[!,.]?\s*here (?:is|are)\b",
    "sign_off": r"\b(?:feel free to ask|let me know if you (?:need|have|want|would)|"
    r"I hope this helps|is there anything else I can)\b",
}


class BoilerplateFilter(PatternFilter):
    """Reject a pair whose question or answer is a chat assistant's line ("How can I help you?",
    "As an AI...", "I'm here to assist", "Sure! Here are..."), not a question or an answer about
    the pages: a `patterns` filter with these patterns, case ignored."""

    type: ClassVar[str] = "boilerplate"
    patterns: dict[str, str] = Field(default_factory=lambda: dict(BOILERPLATE), min_length=1)
    ignore_case: bool = True

    def reason(self, field_name: str, pattern: str, matched: str) -> str:
        return (
            f"{field_name} is a chat assistant's line ({pattern}: {matched!r}), not about the pages"
        )


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

    def decide(self, pairs: list[Pair]) -> list[Decision]:
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
