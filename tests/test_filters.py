from pathlib import Path

import pytest

from curation.config import ConfigError
from curation.filters import FilterChain, PairContext
from curation.filters.rules import UnitDuplicateFilter

ROOT = Path(__file__).resolve().parents[1]


def pair(question: str, answer: str, unit: str = "u") -> PairContext:
    return PairContext(unit_id=unit, question=question, answer=answer)


@pytest.fixture(scope="module")
def docmatix() -> FilterChain:
    return FilterChain.load(ROOT / "filters" / "docmatix.yaml")


def first_failure(chain: FilterChain, p: PairContext):
    decisions = chain.decide([p])[0]
    return next((d for d in decisions if not d.passed), None)


def test_clean_pair_passes_every_rule(docmatix):
    decisions = docmatix.decide([pair("Who chairs the board?", "Elena Marsh chairs it.")])[0]
    assert [d.passed for d in decisions] == [True] * len(docmatix.filters)


@pytest.mark.parametrize(
    ("question", "answer", "rule"),
    [
        ("", "An answer.", "question is empty"),
        ("What is it?", "   ", "answer is empty"),
        ("What is {x}?", "It is x.", "brace_span"),
        ("What is it?", "See [1] for details.", "bracket_span"),
        ("What tag?", "The <b> tag.", "angle_span"),
        ("Which host?", "The host at 192.168.0.1 answers.", "ipv4_address"),
        ("How much?", "It rose 6.4 percent.", "word_dot_word"),
        ("Which example?", "Pipes, e.g. mains.", "word_dot_word"),
        ("What?", "Line one.\n\nLine two", "blank_line"),
        ("When?", "Unanswerable from the text", "unanswerable"),
        ("What?", "Yes. Q2: and more", "qa_marker"),
    ],
)
def test_docmatix_rules_drop_with_reason(docmatix, question, answer, rule):
    failure = first_failure(docmatix, pair(question, answer))
    assert failure is not None
    assert rule in failure.reason


def test_chain_stops_at_first_rejection(docmatix):
    decisions = docmatix.decide([pair("", "")])[0]
    assert len(decisions) == 1 and decisions[0].filter == "non_empty"


def test_unit_duplicates_only_within_a_unit():
    pairs = [
        pair("What is it?", "a"),
        pair("what  is IT?", "b"),
        pair("What is it?", "c", unit="v"),
    ]
    assert [d.passed for d in UnitDuplicateFilter().decide(pairs)] == [True, False, True]


def test_chain_applies_to_outcome_rows(docmatix):
    outcome = {
        "unit_id": "u",
        "pages": [0],
        "texts": ["text"],
        "pairs": [
            {
                "qa_id": "1",
                "question": "Who?",
                "answer": "Ada.",
                "rationale": None,
                "evidence_pages": [],
                "decisions": [],
            },
            {
                "qa_id": "2",
                "question": "How much?",
                "answer": "3.5 m",
                "rationale": None,
                "evidence_pages": [],
                "decisions": [],
            },
        ],
    }
    docmatix([outcome])
    assert all(d["passed"] for d in outcome["pairs"][0]["decisions"])
    assert not outcome["pairs"][1]["decisions"][-1]["passed"]


def test_bad_chain_names_file_and_field(tmp_path):
    path = tmp_path / "chain.yaml"
    path.write_text("name: c\nfilters:\n  - type: patterns\n    patterns: {bad: '('}\n")
    with pytest.raises(ConfigError, match=r"chain\.yaml: field 'filters\.0\.patterns'"):
        FilterChain.load(path)
    path.write_text("name: c\nfilters:\n  - type: nope\n")
    with pytest.raises(ConfigError, match="'nope' is not one of"):
        FilterChain.load(path)


def test_every_shipped_chain_loads():
    for path in sorted((ROOT / "filters").glob("*.yaml")):
        assert FilterChain.load(path).filters
