"""Tolerant reply parsing: JSON (bare, fenced, inside prose, JSON5), YAML lists (fenced or bare),
Markdown tables of pairs and `Q1:/A1:`-style lists; a reasoning model's `<think>` drafts are
dropped first.

Checked on tests/data/replies/: replies in the shapes 7B-70B instruction models write.
Texts come out with markdown emphasis removed, whitespace collapsed, bullet lists as `- item`
lines and table rows kept; citation markers such as `[1]` or `(p. 3)` stay as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from curation.jsonscan import json_values
from curation.tokens import content_words, stem
from curation.yamlfile import ConfigError, parse_yaml


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


class ReplySchema(BaseModel):
    """The structured reply: sent as a JSON schema to engines that enforce one."""

    pairs: list[QAItem]


@dataclass
class ParseResult:
    """The pairs read from a reply, and what could not be read (each with its reason)."""

    pairs: list[QAItem] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_reply(text: str, cut_off: bool = False) -> ParseResult:
    """Read question-answer pairs from a model reply, whichever of the known shapes it has.

    `cut_off`: the engine stopped at max_tokens, so a pair the reply ends inside is rejected
    (one whose last line was finished, the reply ending at a line break, is whole)."""
    if not text or not text.strip():
        return ParseResult(errors=["empty reply"])
    text, thinking = strip_reasoning(text)
    if thinking and not text.strip():
        return ParseResult(errors=[thinking])
    if UNANSWERABLE.fullmatch(text.strip()):
        return ParseResult(errors=["the model answered 'unanswerable': nothing to ask about"])
    result = _parse_json(text)
    if result is None:
        result = _parse_yaml(text)
    if result is None:
        result = _parse_tables(text, cut_off and not text.endswith("\n"))
    if result is None:
        result = QALines(cut_off and not text.endswith("\n")).read(text)
    if not result.pairs and not result.errors:
        result.errors.append("no question-answer pairs found in the reply")
    return result


# --- One question (answer-first) ----------------------------------------------------------

QUESTION_LABEL = re.compile(r"^\W*(?:question|q)\s*\d*\s*[:.)]\s*", re.IGNORECASE)
DIGITS = re.compile(r"\d+")


def parse_question(text: str, answer: str, page: int, cut_off: bool = False) -> ParseResult:
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
    return ParseResult(pairs=[QAItem(question=question, answer=answer, evidence_pages=[page])])


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


# --- Text cleaning -------------------------------------------------------------------------

UNANSWERABLE = re.compile(r"\W*unanswerable\W*", re.IGNORECASE)
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


def _strip_emphasis(line: str) -> str:
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
        line = _strip_emphasis(line).strip()
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


# --- JSON ----------------------------------------------------------------------------------

QA_KEY = re.compile(r"[\"'](?:question|answer|q|a)[\"']\s*:", re.IGNORECASE)
KEY_NAMES = {
    "question": "question",
    "q": "question",
    "query": "question",
    "answer": "answer",
    "a": "answer",
    "rationale": "rationale",
    "reasoning": "rationale",
    "reason": "rationale",
    "explanation": "rationale",
    "justification": "rationale",
    "evidence_pages": "evidence_pages",
    "evidence": "evidence_pages",
    "pages": "evidence_pages",
    "page_numbers": "evidence_pages",
    "source_pages": "evidence_pages",
    "slides": "evidence_pages",
    "evidence_slides": "evidence_pages",
}


def _qa_dicts(value: object) -> list[dict] | None:
    """The question-answer objects a JSON value holds (itself, a list, or a list under a key)."""
    if isinstance(value, dict):
        if any(str(key).lower() in ("question", "q", "answer", "a") for key in value):
            return [value]
        for inner in value.values():
            found = _qa_dicts(inner)
            if found:
                return found
    if isinstance(value, list):
        dicts = [item for item in value if isinstance(item, dict)]
        if any(_qa_dicts(item) == [item] for item in dicts):
            return dicts
    return None


def _json_objects(text: str) -> Iterator[list[dict] | None]:
    """Each group of question-answer objects in the text; None for a JSON value holding
    question keys that the reply ends inside of."""
    for start, end, value in json_values(text):
        if end is None:
            if QA_KEY.search(text, start):
                yield None  # cut off: whole objects inside it are still read
            continue
        found = _qa_dicts(value)
        if found:
            yield found


def _parse_json(text: str) -> ParseResult | None:
    result, found, cut = ParseResult(), False, False
    for group in _json_objects(text):
        found = True
        if group is None:
            cut = True
            continue
        _items(group, "JSON", result)
    if cut:
        result.errors.append("reply cut off inside a JSON item (max_tokens?)")
    return result if found else None


def _items(items: list[dict], label: str, result: ParseResult) -> None:
    """Question-answer dicts (any key names of KEY_NAMES) into the result's pairs, or errors."""
    for item in items:
        index = len(result.pairs) + len(result.errors)
        named = {KEY_NAMES.get(str(k).lower(), str(k)): v for k, v in item.items()}
        try:
            result.pairs.append(QAItem.model_validate(named))
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            result.errors.append(f"{label} item {index}: {problem}")


# --- YAML ----------------------------------------------------------------------------------

FENCE = re.compile(r"^\s*(?:```|~~~)\s*([\w+-]*)\s*$")
BARE_YAML = re.compile(
    r"^\s*(?:-\s+)?[\"']?(?:question|q|pairs|qa_pairs|questions)[\"']?\s*:", re.I
)


def _yaml_blocks(text: str) -> Iterator[str]:
    """Fenced blocks tagged yaml/yml, or untagged; else the whole reply when it starts as a YAML
    list or mapping of pairs (`- question: ...`)."""
    lines, block, tag = text.splitlines(), None, ""
    fenced = False
    for line in lines:
        fence = FENCE.match(line)
        if fence and block is None:
            block, tag = [], fence.group(1).lower()
        elif fence:
            fenced = True
            if tag in ("yaml", "yml", ""):
                yield "\n".join(block)
            block = None
        elif block is not None:
            block.append(line)
    if not fenced and BARE_YAML.match(text):
        yield text


def _parse_yaml(text: str) -> ParseResult | None:
    """Pairs from YAML (a list of pairs, or a mapping holding one); None when no YAML block
    holds any, or the YAML is invalid (model-written YAML often is: `answer: Note: ...`), so the
    line reader takes the reply, fences and all."""
    items: list[dict] = []
    for block in _yaml_blocks(text):
        try:  # the one YAML reader: aliases bounded (a reply is untrusted text)
            value = parse_yaml(block, "reply")
        except ConfigError:
            return None
        found = _qa_dicts(value)
        # One bare mapping (`Question: ...` / `Answer: ...`) is left to the line reader: YAML
        # would keep only the last of repeated keys.
        if found and found != [value]:
            items += found
    if not items:
        return None
    result = ParseResult()
    _items(items, "YAML", result)
    return result


# --- Markdown tables -------------------------------------------------------------------------

TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
CELL_SPLIT = re.compile(r"(?<!\\)\|")
BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
IGNORED_COLUMNS = {"", "#", "no", "no.", "nr", "n", "id", "pair", "index", "number"}


def _cells(line: str) -> list[str]:
    line = line.strip()
    line = line[1:] if line.startswith("|") else line
    line = line[:-1] if line.endswith("|") and not line.endswith("\\|") else line
    return [cell.strip().replace("\\|", "|") for cell in CELL_SPLIT.split(line)]


def _column(header: str) -> str | None:
    name = _strip_emphasis(header).strip().strip(":").strip().lower()
    if name in IGNORED_COLUMNS:
        return None
    return KEY_NAMES.get(name) or KEY_NAMES.get(name.replace(" ", "_")) or name


def _parse_tables(text: str, cut_off: bool) -> ParseResult | None:
    """Pairs from Markdown tables whose header names a question and an answer column (`| # |
    Question | Answer |`, `| Q | A |`, with rationale or evidence columns); None when the
    reply has no such table (a table inside an answer is the answer's text)."""
    lines = text.splitlines()
    result, found = ParseResult(), False
    i = 0
    while i < len(lines) - 1:
        if not (lines[i].lstrip().startswith("|") and TABLE_RULE.match(lines[i + 1])):
            i += 1
            continue
        columns = [_column(cell) for cell in _cells(lines[i])]
        if not {"question", "answer"} <= set(columns):
            i += 2
            continue
        found = True
        i += 2
        rows = []
        while i < len(lines) and lines[i].lstrip().startswith("|"):
            rows.append(lines[i])
            i += 1
        for n, row in enumerate(rows):
            cells = _cells(row)
            last = n == len(rows) - 1 and i == len(lines)
            if last and cut_off and (len(cells) < len(columns) or not row.rstrip().endswith("|")):
                at = columns.index("question")
                question = cells[at] if at < len(cells) else row  # cut before its question cell
                result.errors.append(f"reply cut off at max_tokens in this pair: {question[:80]!r}")
                continue
            item = {
                name: BREAK.sub("\n", cell)
                for name, cell in zip(columns, cells, strict=False)
                if name is not None
            }
            _items([item], "table row", result)
    return result if found else None


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
class _Pair:
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
        self.result = ParseResult()
        self.pair: _Pair | None = None
        self.open: str | None = None  # the field that the next plain line continues
        self.gap = False  # a blank line since the last text
        self.candidate: str | None = None  # a question line without a marker (`1. **Why?**`)
        # Prose after a blank line inside an answer or rationale: its next paragraph when a
        # marker follows, a closing remark ("Let me know...") when the reply ends there.
        self.pending: tuple[list[str], list[str]] | None = None

    def read(self, text: str) -> ParseResult:
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
        self.pair = _Pair(question=[question], heading=heading and not question)
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
        self.pair = _Pair(question=[question], answer=[rest])
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
        self.result.pairs.append(
            QAItem(
                question=question,
                answer=answer,
                rationale=clean_text(pair.rationale or []) or None,
                evidence_pages=pair.evidence,
            )
        )
