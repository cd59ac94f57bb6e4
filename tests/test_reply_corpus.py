"""The parser on a corpus of replies in the shapes 7B-70B instruction models write.

tests/data/replies/heldout/ was written before the parser was tuned and is never tuned on;
tests/data/replies/train/ is what the parser was developed against. Each entry has the reply and
the pairs a careful reader extracts (markdown emphasis removed, bullets as `- item` lines).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from curation.generate.parse import parse_reply

CORPUS = Path(__file__).parent / "data" / "replies"
SPLITS = ("heldout", "train")
STRUCTURAL = re.compile(r"^(?:- |\||\d+[.)] )")


def load_split(split: str) -> list[dict]:
    entries = []
    for path in sorted((CORPUS / split).glob("*.yaml")):
        entries += yaml.safe_load(path.read_text(encoding="utf-8"))
    return entries


def same_text(text: str | None) -> str | None:
    """Whitespace only: runs collapsed; prose lines joined; list items and table rows kept."""
    if text is None:
        return None
    lines: list[str] = []
    for raw in text.splitlines():
        line = " ".join(raw.split())
        if not line:
            continue
        if lines and not STRUCTURAL.match(line) and not lines[-1].startswith("|"):
            lines[-1] = f"{lines[-1]} {line}"
        else:
            lines.append(line)
    return "\n".join(lines)


def key(question: str, answer: str, rationale: str | None, pages: list[int]) -> tuple:
    return same_text(question), same_text(answer), same_text(rationale), tuple(pages)


def score(entries: list[dict]) -> dict:
    """Recovered, invented and unexplained-error counts over a split, with the misses named."""
    figures = {"expected": 0, "recovered": 0, "invented": 0, "error_misses": 0, "misses": []}
    for entry in entries:
        result = parse_reply(entry["reply"], cut_off=entry.get("finish_reason") == "length")
        got = [key(p.question, p.answer, p.rationale, p.evidence_pages) for p in result.pairs]
        expected = [
            key(e["question"], e["answer"], e.get("rationale"), e.get("evidence_pages", []))
            for e in entry["pairs"]
        ]
        figures["expected"] += len(expected)
        for pair in expected:
            if pair in got:
                figures["recovered"] += 1
                got.remove(pair)
            else:
                figures["misses"].append((entry["id"], "missed", pair))
        # A parsed pair left over is invented unless its question or answer is an expected one
        # (then it is a misread, counted above as not recovered).
        texts = {text for pair in expected for text in pair[:2]}
        for pair in got:
            if not texts & set(pair[:2]):
                figures["invented"] += 1
                figures["misses"].append((entry["id"], "invented", pair))
        wanted = entry.get("errors", [])
        explained = all(any(w in e for e in result.errors) for w in wanted)
        if not explained or len(result.errors) != len(wanted):
            figures["error_misses"] += 1
            figures["misses"].append((entry["id"], "errors", result.errors))
    return figures


@pytest.mark.parametrize("split", SPLITS)
def test_corpus_pairs_are_recovered_and_none_invented(split):
    entries = load_split(split)
    figures = score(entries)
    share = figures["recovered"] / figures["expected"]
    print(
        f"\n{split}: {len(entries)} replies, {figures['recovered']}/{figures['expected']} pairs "
        f"recovered ({share:.1%}), {figures['invented']} invented, "
        f"{figures['error_misses']} replies with wrong errors"
    )
    for miss in figures["misses"]:
        print("  ", *miss)
    assert len(entries) >= 30
    assert share >= 0.99
    assert figures["invented"] == 0
    assert figures["error_misses"] == 0


def test_corpus_covers_the_formats_asked_for():
    entries = load_split("heldout") + load_split("train")
    formats = {e["format"] for e in entries}
    assert len(entries) >= 100
    assert {
        "qa_plain",
        "qa_bold",
        "question_answer_words",
        "qa_unnumbered",
        "md_list_question",
    } <= formats
    assert {"heading", "json_fenced", "json_single_quotes", "truncated_qa", "refusal"} <= formats
    assert {e["prompt_set"] for e in entries} == {"docmatix", "leopard", "slides"}


def test_truncated_last_pair_becomes_a_reject_with_its_reason():
    (entry,) = [e for e in load_split("heldout") if e["id"] == "h-dm-11"]
    result = parse_reply(entry["reply"], cut_off=True)
    assert [p.question for p in result.pairs] == [e["question"] for e in entry["pairs"]]
    assert len(result.errors) == 1 and "cut off" in result.errors[0]
    assert "estimated journey time" in result.errors[0]
