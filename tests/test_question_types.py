"""Question types: prompts declare them, units draw them (negatives at their share), pairs carry
them, and the default chain checks not_answerable and cross-page pairs the way their type asks."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from pairs import pair_in

from curation.config import ConfigError, GenerateConfig, UnitsConfig
from curation.filters.chain import FilterChain
from curation.filters.cross_page import CrossPageFilter
from curation.filters.grounding import GroundingFilter
from curation.generate import QAGenerator
from curation.schema import Pair, Unit

PAGES = [
    "Kestrel Bay Ferries. The Harbor Line carried 701 thousand passengers in the third quarter. "
    "The fleet has three vessels: Cygnus, Aurora and Borealis.",
    "Fuel is bought from Kestrel Marine Supply. Cygnus burned 1,515 tonnes of fuel in 2025 and "
    "was in dry dock for eleven days in November.",
]


def unit(n: int, kind: str = "document", pages: int = 2, layout: str = "window") -> dict:
    return Unit(
        unit_id=f"doc{n:05d}:0-{pages - 1}",
        doc_id=f"doc{n:05d}",
        source="s.pdf",
        kind=kind,
        doc_pages=pages,
        doc_units=1,
        pages=list(range(pages)),
        texts=["text"] * pages,
        text_sources=["layer"] * pages,
        ocr_scores=[None] * pages,
        images=[b""] * pages,
        layout=layout,
        page_dups=[None] * pages,
    ).row()


def generator(**settings) -> QAGenerator:
    return QAGenerator(GenerateConfig(**settings), UnitsConfig(), ROOT / "prompts")


def prompt_of(gen: QAGenerator, row: dict) -> str:
    return gen.request_for(row).request_id.split("|", 1)[1]


@pytest.mark.parametrize("share", [0.05, 0.07, 0.10])
def test_negatives_are_drawn_at_their_share(share: float) -> None:
    gen = generator(prompt_set="typed", negative_share=share, seed=3)
    drawn = [prompt_of(gen, unit(n)) for n in range(1000)]
    negatives = sum(p == "typed/not_answerable" for p in drawn) / len(drawn)
    assert abs(negatives - share) <= 0.02, negatives


def test_question_type_weights_set_the_mix() -> None:
    weights = {"extractive": 2.0, "multi_hop": 1.0, "yes_no": 1.0}
    gen = generator(prompt_set="typed", question_types=weights, negative_share=0.1)
    drawn = Counter(
        gen.library.by_id[prompt_of(gen, unit(n))].meta.question_type for n in range(2000)
    )
    assert set(drawn) == {"extractive", "multi_hop", "yes_no", "not_answerable"}
    answerable = sum(v for k, v in drawn.items() if k != "not_answerable")
    assert abs(drawn["extractive"] / answerable - 0.5) < 0.04
    assert abs(drawn["multi_hop"] / answerable - 0.25) < 0.04
    # A one-page unit cannot take a multi-hop prompt: its draw falls on the fitting types.
    one_page = {
        gen.library.by_id[prompt_of(gen, unit(n, pages=1))].meta.question_type for n in range(300)
    }
    assert "multi_hop" not in one_page and "extractive" in one_page


def test_a_set_without_negatives_keeps_its_prompt_choice() -> None:
    """Sets that have no not_answerable prompt draw as before types existed (caches still hit)."""
    gen = generator(prompt_set="docmatix", negative_share=0.5)
    from curation.seeding import stable_fraction

    templates = gen.library.templates
    for n in range(200):
        row = unit(n)
        point = stable_fraction("prompt", 0, row["unit_id"]) * sum(gen.library.weights)
        expected = templates[-1].id
        for template, weight in zip(templates, gen.library.weights, strict=True):
            if point < weight:
                expected = template.id
                break
            point -= weight
        assert prompt_of(gen, row) == expected


def test_question_types_name_types_the_set_has() -> None:
    with pytest.raises(ConfigError, match=r"no prompt in .* asks for \['list'\]"):
        generator(prompt_set="slides", question_types={"list": 1.0})
    with pytest.raises(ValueError, match="negative_share"):
        GenerateConfig(question_types={"not_answerable": 1.0})


def test_pairs_carry_their_prompts_type() -> None:
    from curation.generate.engines import EngineResult

    gen = generator(prompt_set="typed", negative_share=0.0)
    row = unit(7)
    request = gen.request_for(row)
    reply = "Q1: Which vessel is the largest?\nA1: Cygnus.\nR1: Page 1 says so.\nE1: pages 1"
    outcome = gen.outcome(row, EngineResult(request.request_id, reply, "stop", 10, 10))
    expected = gen.library.by_id[request.request_id.split("|")[1]].meta.question_type
    assert [p["question_type"] for p in outcome["pairs"]] == [expected]


def pair(question: str, answer: str, kind: str | None = None, evidence=(), rationale=None) -> Pair:
    return pair_in(
        unit_id="u",
        question=question,
        answer=answer,
        rationale=rationale,
        question_type=kind,
        evidence_pages=list(evidence),
        pages=[0, 1],
        texts=list(PAGES),
    )


def default_chain() -> FilterChain:
    return FilterChain.load(str(ROOT / "filters" / "default.yaml"))


def verdicts(pairs: list[Pair]) -> list[tuple[bool, str, str | None]]:
    """(kept, the deciding reason or the last note, the type after the chain) per pair."""
    decisions = default_chain().decide(pairs)
    out = []
    for context, ds in zip(pairs, decisions, strict=True):
        failed = next((d for d in ds if not d.passed), None)
        note = failed.reason if failed else " | ".join(d.reason for d in ds if d.reason)
        out.append((failed is None, note, context.question_type))
    return out


def test_correct_negatives_survive_the_default_chain() -> None:
    cases = [
        (
            "How much did the Harbor Line's new terminal cost?",
            "The document does not state the cost of a new terminal.",
        ),
        (
            "Who is the chief executive of Kestrel Bay Ferries?",
            "The pages do not name the chief executive.",
        ),
        (
            "What was the fare for the Island Loop in 2025?",
            "Not stated: the pages give passengers and fuel, not fares.",
        ),
        (
            "How many passengers did Cygnus carry in 2019?",
            "This cannot be determined from the pages; they report 2025 only.",
        ),
        (
            "Is the 2026 timetable unanswerable from these pages?",
            "Unanswerable: the pages do not mention a 2026 timetable.",
        ),
    ]
    results = verdicts([pair(q, a, "not_answerable") for q, a in cases])
    for (question, _), (kept, note, kind) in zip(cases, results, strict=True):
        assert kept, (question, note)
        assert "absent from the pages" in note and kind == "not_answerable"


def test_wrong_negatives_are_rejected() -> None:
    results = verdicts(
        [
            # The pages answer it: a refusal here is a wrong answer.
            pair(
                "How many tonnes of fuel did Cygnus burn in 2025?",
                "The document does not state Cygnus's fuel use.",
            ),
            # A not_answerable prompt's pair that answers instead of refusing.
            pair("What is the fare on the Bay Express?", "Twelve dollars.", "not_answerable"),
        ]
    )
    assert [kept for kept, _, _ in results] == [False, False]
    assert "pages hold every word" in results[0][1]
    assert "not a refusal" in results[1][1]


def test_a_refusal_to_an_answerable_prompt_is_kept_as_a_negative_when_it_is_one() -> None:
    results = verdicts(
        [
            pair(
                "Who supplied the ferries' life jackets?",
                "The pages do not say who supplied life jackets.",
                "extractive",
            )
        ]
    )
    assert results[0][0] and results[0][2] == "not_answerable"


def test_yes_no_answers_are_not_refusals() -> None:
    grounding = GroundingFilter()
    no = pair("Was Cygnus in dry dock in November?", "Yes, for eleven days.", "yes_no")
    negated = pair(
        "Does Aurora serve the Harbor Line?",
        "No, the pages do not say Aurora serves it; Cygnus does.",
        "yes_no",
    )
    assert not grounding.refuses(no) and not grounding.refuses(negated)


def test_cross_page_pairs_must_use_two_pages() -> None:
    two = pair(
        "How many tonnes of fuel did the vessel that serves the Harbor Line burn?",
        "1,515 tonnes (Cygnus).",
        "multi_hop",
        evidence=[1, 2],
        rationale="Page 1: the fleet and the Harbor Line; page 2: Cygnus's fuel.",
    )
    one = pair("How long was Cygnus in dry dock?", "Eleven days, in November.", "multi_hop")
    cited_one = pair(
        "Which vessel of the Harbor Line burned 1,515 tonnes of fuel?",
        "Cygnus, the largest of the fleet.",
        "comparison",
        evidence=[2],
    )
    results = verdicts([two, one, cited_one])
    assert results[0][0] and results[0][2] == "multi_hop" and "uses pages 1 and 2" in results[0][1]
    assert results[1][0] and results[1][2] == "extractive" and "retyped extractive" in results[1][1]
    assert results[2][0] and results[2][2] == "extractive", results[2]
    assert "evidence pages" in results[2][1]
    strict = CrossPageFilter(action="reject")
    assert [d.passed for d in strict.decide([two, one])] == [True, False]


def test_docmatix_chain_still_drops_unanswerable() -> None:
    chain = FilterChain.load(str(ROOT / "filters" / "docmatix.yaml"))
    negative = pair("When was it founded?", "Unanswerable from the pages.", "not_answerable")
    assert not chain.decide([negative])[0][-1].passed


def test_recipe_examples_and_shipped_recipe_use_types(tmp_path: Path) -> None:
    from curation.config import load_recipe

    slides = load_recipe(ROOT / "recipes" / "slides.yaml")
    assert slides.generate.negative_share > 0
    assert any(
        t.meta.question_type == "not_answerable"
        for t in generator(prompt_set=slides.generate.prompt_set).library.templates
    )
    data = yaml.safe_load((ROOT / "recipes" / "slides.yaml").read_text())
    assert data["generate"]["question_types"]
