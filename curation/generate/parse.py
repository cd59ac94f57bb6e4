"""Tolerant reply parsing: JSON (bare, fenced, inside prose, JSON5), YAML lists (fenced or bare),
Markdown tables of pairs and `Q1:/A1:`-style lists; a reasoning model's `<think>` drafts are
dropped first. The readers live by format (generate/reply_formats.py, generate/reply_lines.py);
this module tries them in turn and turns the items they read into the pair record
(schema.Pair), the one type a pair keeps from here to the writer.

Checked on tests/data/replies/: replies in the shapes 7B-70B instruction models write.
Texts come out with markdown emphasis removed, whitespace collapsed, bullet lists as `- item`
lines and table rows kept; citation markers such as `[1]` or `(p. 3)` stay as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import BaseModel

from curation.generate.reply_formats import parse_json, parse_tables, parse_yaml_pairs
from curation.generate.reply_lines import QALines
from curation.generate.reply_text import QAItem, ReplyRead, clean_text
from curation.schema import Pair
from curation.seeding import content_id
from curation.tokens import content_words, stem


class ReplySchema(BaseModel):
    """The structured reply: sent as a JSON schema to engines that enforce one."""

    pairs: list[QAItem]


@dataclass
class ParseResult:
    """The pairs read from a reply, and what could not be read (each with its reason)."""

    pairs: list[Pair] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _result(read: ReplyRead, unit_id: str, question_type: str | None) -> ParseResult:
    """The reader's items as pair records: each pair's id is its unit's and its own texts'."""
    pairs = [
        Pair(
            qa_id=content_id(unit_id, item.question, item.answer),
            question=item.question,
            answer=item.answer,
            rationale=item.rationale,
            evidence_pages=item.evidence_pages,
            question_type=question_type,
        )
        for item in read.items
    ]
    return ParseResult(pairs, read.errors)


UNANSWERABLE = re.compile(r"\W*unanswerable\W*", re.IGNORECASE)


def parse_reply(
    text: str, cut_off: bool = False, *, unit_id: str = "", question_type: str | None = None
) -> ParseResult:
    """Read question-answer pairs from a model reply, whichever of the known shapes it has.

    `cut_off`: the engine stopped at max_tokens, so a pair the reply ends inside is rejected
    (one whose last line was finished, the reply ending at a line break, is whole). `unit_id`
    and `question_type` (what the prompt asked for) go on the pairs."""
    if not text or not text.strip():
        return ParseResult(errors=["empty reply"])
    text, thinking = strip_reasoning(text)
    if thinking and not text.strip():
        return ParseResult(errors=[thinking])
    if UNANSWERABLE.fullmatch(text.strip()):
        return ParseResult(errors=["the model answered 'unanswerable': nothing to ask about"])
    read = parse_json(text)
    if read is None:
        read = parse_yaml_pairs(text)
    if read is None:
        read = parse_tables(text, cut_off and not text.endswith("\n"))
    if read is None:
        read = QALines(cut_off and not text.endswith("\n")).read(text)
    if not read.items and not read.errors:
        read.errors.append("no question-answer pairs found in the reply")
    return _result(read, unit_id, question_type)


# --- One question (answer-first) ----------------------------------------------------------

QUESTION_LABEL = re.compile(r"^\W*(?:question|q)\s*\d*\s*[:.)]\s*", re.IGNORECASE)
DIGITS = re.compile(r"\d+")


def parse_question(
    text: str,
    answer: str,
    page: int,
    cut_off: bool = False,
    *,
    unit_id: str = "",
    question_type: str | None = None,
) -> ParseResult:
    """The pair of an answer-first reply: the question on its first line (a `Question:` label
    left out, what follows its question mark dropped), answered by the page span it was asked
    for (`answer`, from `page`). A reply with no question is rejected, and so is a question not
    about its span: one that shares no content word with it, or names a number it lacks."""
    text = strip_reasoning(text or "")[0]
    line = next((line for line in text.splitlines() if line.strip()), "")
    line = clean_text([QUESTION_LABEL.sub("", line.strip())])
    question, mark, _ = line.partition("?")
    if not mark:
        reason = "reply cut off before its question mark" if cut_off else "no question in the reply"
        return ParseResult(errors=[f"{reason}: {line[:80]!r}"])
    question = f"{question.strip()}?"
    if not {stem(w) for w in content_words(question)} & {stem(w) for w in content_words(answer)}:
        return ParseResult(errors=[f"question shares no word with its answer span: {question!r}"])
    stray = [n for n in DIGITS.findall(question) if n not in DIGITS.findall(answer)]
    if stray:
        return ParseResult(
            errors=[f"question names {stray[0]}, its answer span does not: {question!r}"]
        )
    item = QAItem(question=question, answer=answer, evidence_pages=[page])
    return _result(ReplyRead([item]), unit_id, question_type)


# --- Reasoning --------------------------------------------------------------------------------

THINK = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.IGNORECASE | re.DOTALL)
THINK_OPEN = re.compile(r"<(?:think|thinking|reasoning)>", re.IGNORECASE)
THINK_CLOSE = re.compile(r"</(?:think|thinking|reasoning)>", re.IGNORECASE)


def strip_reasoning(text: str) -> tuple[str, str | None]:
    """The reply without a reasoning model's drafts: `<think>...</think>` blocks, the text before
    a lone `</think>` (the chat template opened the block in the prompt), and an unclosed
    `<think>` to the end. Drafts never become pairs. Also returns the reason to give when
    nothing but reasoning is left (None when the reply had no reasoning block)."""
    text, removed = THINK.subn("", text)
    found = removed > 0
    closes = list(THINK_CLOSE.finditer(text))
    if closes:
        text, found = text[closes[-1].end() :], True
    opened = THINK_OPEN.search(text)
    if opened:
        text, found = text[: opened.start()], True
    if not found:
        return text, None
    return (
        text,
        "the reply holds only the model's reasoning (<think>), no pairs after it (cut off?)",
    )
