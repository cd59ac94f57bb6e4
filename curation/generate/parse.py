"""Tolerant reply parsing: JSON (bare, fenced, or inside prose) and `Q1:/A1:` lists."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class QAItem(BaseModel):
    """One question-answer pair as an engine returns it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    question: str = Field(alias="q")
    answer: str = Field(alias="a")
    rationale: str | None = None
    evidence_pages: list[int] = Field(default_factory=list)


class ReplySchema(BaseModel):
    """The structured reply: sent as a JSON schema to engines that enforce one."""

    pairs: list[QAItem]


@dataclass
class ParseResult:
    """The pairs read from a reply, and what could not be read (each with its reason)."""

    pairs: list[QAItem] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
LIST_KEYS = ("pairs", "qa_pairs", "questions", "items", "data")
MARKER = re.compile(
    r"^[\s*_#>\-]*(?P<tag>question|answer|q|a)\s*(?P<num>\d+)?\s*(?:\*\*)?\s*"
    r"(?(num)[:.)]|:)\s*(?:\*\*)?\s*(?P<rest>.*)$",
    re.IGNORECASE,
)
# Leopard-style extras after an answer: `R1: <rationale>` and `E1: pages 2, 3`.
EXTRA = re.compile(
    r"^[\s*_#>\-]*(?P<tag>rationale|reason|evidence(?:\s+pages)?|r|e)\s*(?P<num>\d+)?\s*(?:\*\*)?"
    r"\s*(?(num)[:.)]|:)\s*(?:\*\*)?\s*(?P<rest>.*)$",
    re.IGNORECASE,
)
PAGE_NUMBER = re.compile(r"\d+")


def parse_reply(text: str) -> ParseResult:
    """Read question-answer pairs from a model reply, whichever of the known shapes it has."""
    if not text or not text.strip():
        return ParseResult(errors=["empty reply"])
    parsed = _parse_json(text)
    if parsed is not None:
        return parsed
    result = _parse_qa_lines(text)
    if not result.pairs and not result.errors:
        result.errors.append("no question-answer pairs found in the reply")
    return result


def _json_candidates(text: str) -> list[str]:
    candidates = [m.group(1) for m in FENCE.finditer(text)]
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if starts:
        start = min(starts)
        end = max(text.rfind("}"), text.rfind("]"))
        if end > start:
            candidates.append(text[start : end + 1])
    return candidates


def _parse_json(text: str) -> ParseResult | None:
    for candidate in _json_candidates(text):
        try:
            data = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        items = _json_items(data)
        if items is None:
            continue
        result = ParseResult()
        for index, item in enumerate(items):
            try:
                result.pairs.append(QAItem.model_validate(item))
            except ValidationError as exc:
                problem = "; ".join(
                    f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
                )
                result.errors.append(f"JSON item {index}: {problem}")
        return result
    return None


def _json_items(data: object) -> list | None:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in LIST_KEYS:
            if isinstance(data.get(key), list):
                return data[key]
        if {"question", "answer"} <= data.keys():
            return [data]
    return None


def _parse_qa_lines(text: str) -> ParseResult:
    result = ParseResult()
    question: list[str] | None = None
    answer: list[str] | None = None
    rationale: list[str] | None = None
    evidence: list[int] = []

    def close() -> None:
        if question is None:
            return
        q = "\n".join(question).strip()
        a = "\n".join(answer).strip() if answer is not None else ""
        if answer is None:
            result.errors.append(f"question without an answer (reply cut off?): {q[:80]!r}")
        else:
            # Empty fields are kept as a pair so that the filters reject it with a reason.
            why = "\n".join(rationale).strip() if rationale is not None else None
            result.pairs.append(
                QAItem(question=q, answer=a, rationale=why or None, evidence_pages=evidence)
            )

    for line in text.splitlines():
        extra = EXTRA.match(line) if answer is not None else None
        if extra:
            if extra.group("tag").lower().startswith("e"):
                evidence = sorted({int(n) for n in PAGE_NUMBER.findall(extra.group("rest"))})
                continue
            rationale = [extra.group("rest")]
            continue
        match = MARKER.match(line)
        tag = match.group("tag").lower()[0] if match else None
        if tag == "q":
            close()
            question, answer, rationale, evidence = [match.group("rest")], None, None, []
        elif tag == "a" and question is not None and answer is None:
            answer = [match.group("rest")]
        elif tag == "a":
            result.errors.append(f"answer without a question: {match.group('rest')[:80]!r}")
        elif rationale is not None:
            rationale.append(line)
        elif answer is not None:
            answer.append(line)
        elif question is not None:
            question.append(line)
    close()
    return result
