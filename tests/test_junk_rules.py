"""The junk a 135M model wrote in `make recipes` (issue 29), caught by general rules of the
default chain, each with a reason a curator understands; and the good pairs next to each junk
example kept. What the rules cost on good pairs is measured in tests/test_rule_costs.py."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from pairs import filter_rows, pair_in

import curation.filters.entities as entity_module
from curation.config import load_recipe
from curation.filters import FilterChain
from curation.filters.dedup import DedupFilter
from curation.filters.entities import EntityGroundingFilter, entities, squeeze
from curation.filters.rules import (
    AnswerEchoFilter,
    BoilerplateFilter,
    ReplyLabelFilter,
    UnitDuplicateFilter,
)
from curation.schema import Pair

ROOT = Path(__file__).resolve().parents[1]

PAGE = (
    "Brightfern Analytics annual report. The company had 200 employees in 2024. Each battery "
    "is rated for no more than 10 cycles. The bridge over the Ouse was built by a local company "
    "and opened to traffic after the works."
)
# A page that prints quarter labels and a table's row labels itself.
QUARTERS = "Revenue by quarter\nQ3: revenue rose to $5 million\nQ4: revenue fell\nRow B2: pumps"


def pair(question: str, answer: str, texts=(PAGE,), unit="doc:0-1", **more) -> Pair:
    return pair_in(unit_id=unit, question=question, answer=answer, texts=list(texts), **more)


def verdict(flt, p: Pair):
    return flt.decide([p])[0]


@pytest.mark.parametrize(
    ("question", "answer", "reason"),
    [
        (
            "How many cycles is each battery rated for?",
            "No more than 10 cycles. B1: No more than 10 cycles. B2: No more than 10 cycles. "
            "B3: No more than 10 cycles.",
            "answer runs on through reply labels (B1, B2, B3)",
        ),
        (
            "Which company wrote the report?",
            "Brightfern Analytics B1: Brightfern Analytics C1: Brightfern Analytics",
            "answer runs on through reply labels (B1, C1)",
        ),
        (
            "B1: How many employees did the company have in 2024?",
            "2024 has 200 employees",
            "question starts with the reply label 'B1'",
        ),
        ("C1: What is the total number of employees?", "200", "starts with the reply label 'C1'"),
        (
            "How many cycles is each battery rated for?",
            "No more than 10 cycles. B1: No more than 10 cycles.",
            "answer says the same thing again after the label B1",
        ),
        # Kept by the chain before, found by the review of the shipped recipes' pairs
        # (docs/review-recipes.md): one label, opening the model's next pair.
        (
            "Which of the four 25 °C LFP cells met the requirements of the HX-4?",
            "The NMC811 cells met the requirements of the HX-4. B1: The NMC811 cells did not "
            "meet the requirements of the HX-4.",
            "answer goes on after the reply label 'B1' that opens a sentence",
        ),
        (
            "What is the purpose of testing?",
            "To determine if the cell has been tested before. B1: To evaluate the performance "
            "of the cell during testing.",
            "answer goes on after the reply label 'B1' that opens a sentence",
        ),
    ],
)
def test_reply_labels_drop_loops_and_label_debris(question, answer, reason):
    decision = verdict(ReplyLabelFilter(), pair(question, answer))
    assert not decision.passed and reason in decision.reason


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("What happened to revenue in Q3 and Q4?", "Q3: revenue rose to $5 million. Q4: it fell."),
        ("Q3: how much revenue was there?", "$5 million"),
        ("What does row B2 list?", "B2: pumps"),
    ],
)
def test_labels_the_pages_print_pass(question, answer):
    assert verdict(ReplyLabelFilter(), pair(question, answer, texts=[QUARTERS])).passed


def test_the_same_labels_are_the_models_on_pages_that_do_not_print_them():
    two = pair("What happened to revenue?", "Q3: revenue rose to $5 million. Q4: it fell.")
    lead = pair("Q3: how much revenue was there?", "$5 million")
    assert not any(d.passed for d in ReplyLabelFilter().decide([two, lead]))


def test_one_label_a_sentence_uses_passes():
    p = pair("Where is the fuse?", "In cell B1: the panel's top left.", texts=["The fuse panel."])
    assert verdict(ReplyLabelFilter(), p).passed


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("How can I help you with your business?", "Brightfern Analytics offers reports."),
        ("What does the company do?", "I'm here to assist you with any questions you have."),
        ("What does the company do?", "As an AI language model, I cannot read the report."),
        ("What are the key facts?", "Sure! Here are the key facts: 200 employees."),
        ("Who wrote it?", "Brightfern Analytics. Let me know if you need anything else!"),
    ],
)
def test_assistant_boilerplate_is_dropped(question, answer):
    decision = verdict(BoilerplateFilter(), pair(question, answer))
    assert not decision.passed and "chat assistant's line" in decision.reason


@pytest.mark.parametrize(
    "question", ["How can volunteers help the food bank?", "How can I help the food bank?"]
)
def test_boilerplate_spares_documents_that_talk_about_help(question):
    p = pair(question, "Sort donations on Saturdays.")
    assert verdict(BoilerplateFilter(), p).passed


def test_an_answer_that_repeats_its_question_with_one_word_changed_is_dropped():
    p = pair(
        "What is the maximum weight capacity of the trailer?",
        "What is the maximum weight capacity of the bike?",
    )
    decision = verdict(AnswerEchoFilter(), p)
    assert not decision.passed and "one word changed ('bike')" in decision.reason
    assert verdict(AnswerEchoFilter(near_echoes=False), p).passed  # the rule before issue 29


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Who signed the annual statement?", "Okafor signed the annual statement."),
        ("Was the Island Loop closed in February?", "No, the Island Loop was closed in March."),
        ("Was the bridge built by the council?", "Yes, the bridge was built by the council."),
    ],
)
def test_answers_that_reuse_the_question_pass(question, answer):
    assert verdict(AnswerEchoFilter(), pair(question, answer)).passed


def test_questions_differing_only_in_label_or_number_are_one_question():
    pairs = [
        pair("B1: How many employees does Brightfern have?", "2024 has 200 employees"),
        pair("C1: How many employees does Brightfern have?", "2024 has 200 employees"),
        pair("2. How many employees does Brightfern have?", "2024 has 200 employees"),
    ]
    decisions = UnitDuplicateFilter().decide(pairs)
    assert [d.passed for d in decisions] == [True, False, False]


def test_near_duplicates_across_a_document_differ_only_in_prefix():
    """Two units of one document; the pairs differ only in their leading label or number."""
    pairs = [
        pair("1. How many employees did Brightfern have?", "200 employees.", unit="d:0-1"),
        pair("B2: How many employees did Brightfern have?", "B2: 200 employees.", unit="d:2-3"),
        pair("How many cycles is a battery rated for?", "No more than 10.", unit="d:2-3"),
    ]
    for i, p in enumerate(pairs):
        p.qa_id = f"id{i}"
    decisions = DedupFilter().decide(pairs)
    assert [d.passed for d in decisions] == [True, False, True]
    assert "duplicate of id0" in decisions[1].reason


def test_the_same_pair_is_never_kept_twice_by_the_shipped_docmatix_recipe():
    """One pair twice with the same qa_id (as `make recipes` kept it): the recipe's chain keeps
    the first only."""
    chain = FilterChain.load(ROOT / load_recipe(ROOT / "recipes" / "docmatix.yaml").filters)
    twice = [
        pair("How many employees did the company have in 2024?", "It had 200 employees.")
        for _ in range(2)
    ]
    for p in twice:
        p.qa_id = "same-qa-id"
    kept = [all(d.passed for d in ds) for ds in chain.decide(twice)]
    assert kept == [True, False]


def test_entities_are_capitalised_runs_that_do_not_open_a_sentence():
    assert entities("It was built by the British East India Company in Kestrel Bay.") == [
        "British East India Company",
        "Kestrel Bay",
    ]
    assert entities("The Harbor Line runs daily. Cygnus serves it.") == ["Harbor Line"]
    assert entities("How did COVID-19 affect ridership in March?") == ["COVID-19"]
    assert entities("Signed by Dr. Helen Okafor") == ["Okafor"]


@pytest.mark.parametrize(
    ("question", "answer", "reason"),
    [
        (
            "Who built the bridge over the Ouse?",
            "It was built by the British East India Company.",
            "answer names 'British East India Company'",
        ),
        (
            "How did COVID-19 affect the company's staff?",
            "The company kept its 200 employees.",
            "question asks about 'COVID-19'",
        ),
    ],
)
def test_names_no_page_holds_are_dropped(question, answer, reason):
    decision = verdict(EntityGroundingFilter(), pair(question, answer))
    assert not decision.passed and reason in decision.reason


@pytest.mark.parametrize(
    "page",
    [
        "Ferries cross Kes-\ntrel Bay daily.",  # hyphenated at a line end
        "FERRIES CROSS KESTREL BAY DAILY.",  # case
        "Ferries cross Kest rel Bay daily.",  # OCR split a word
        "Kestrel Bay's ferries cross daily.",  # possessive
    ],
)
def test_names_are_found_after_normalisation(page):
    p = pair("Where do the ferries cross?", "They cross Kestrel Bay.", texts=[page])
    assert verdict(EntityGroundingFilter(), p).passed


def test_the_first_page_or_the_file_name_holds_the_documents_title_and_owner():
    p = pair(
        "How many staff did Northwind Ferries employ?",
        "198 terminal staff.",
        texts=["Staff by department: Terminal staff 198."],
    )
    assert not verdict(EntityGroundingFilter(), p).passed
    p.unit.title_text = (
        "Northwind Ferries 2025 Operations Report\nNorthwind Ferries runs three routes"
    )
    assert verdict(EntityGroundingFilter(), p).passed
    p.unit.title_text, p.unit.source = "", "/data/in/northwind_ferries_2025.pdf"
    assert verdict(EntityGroundingFilter(), p).passed


def test_a_run_carries_the_first_page_to_every_unit_and_its_pairs(tmp_path):
    """Units of a 4-page PDF: each carries its document's first page text, and the chain hands
    it to the filters with the unit's pages."""
    import pymupdf

    from curation.config import IngestConfig, UnitsConfig
    from curation.ingest import iter_pages
    from curation.units import document_units

    path = tmp_path / "report.pdf"
    doc = pymupdf.open()
    for text in ["Brightfern Analytics annual report", "Staff", "Offices", "Outlook"]:
        doc.new_page().insert_text((72, 72), text)
    doc.save(path)
    units = list(
        document_units(iter_pages(path, "d", IngestConfig(dpi=36)), UnitsConfig(pages_per_unit=2))
    )
    assert [u["pages"] for u in units] == [[0, 1], [2, 3]]
    assert all(u["title_text"].strip() == "Brightfern Analytics annual report" for u in units)
    outcome = {
        **units[1],
        "pairs": [
            {
                "qa_id": "q",
                "question": "What does Brightfern Analytics expect?",
                "answer": "The outlook.",
                "rationale": None,
                "evidence_pages": [],
            }
        ],
    }
    chain = FilterChain("names", [EntityGroundingFilter()])
    (pair_row,) = filter_rows(chain, [outcome])[0]["pairs"]
    assert pair_row["decisions"][0]["passed"], pair_row["decisions"]


def test_squeeze_keeps_letters_and_digits_of_every_script():
    """The regex form of `squeeze` keeps what a per-character isalnum() test kept."""
    text = "Kes-\ntrel Bay's Ünïcode \uff2b\uff25\uff33 x_1 ٣٤ 中文 ½ e\u0301 — №5 ß"
    folded = "".join(
        ch
        for ch in unicodedata.normalize("NFKC", text).replace("'s", "").casefold()
        if ch.isalnum()
    )
    assert squeeze(text) == folded


def test_entity_grounding_squeezes_a_units_pages_once_not_once_a_pair(monkeypatch):
    """Each of a unit's pairs is checked against the same pages: they are squeezed once."""
    squeezed = []
    real = entity_module.squeeze

    def counting(text: str) -> str:
        squeezed.extend([text] if PAGE in text else [])
        return real(text)

    monkeypatch.setattr(entity_module, "squeeze", counting)
    pages = (PAGE, "A page no other test has.")
    pairs = [
        pair(f"Who built the bridge over the Ouse, question {i}?", "A local company.", texts=pages)
        for i in range(4)
    ]
    assert all(d.passed for d in EntityGroundingFilter().decide(pairs))
    assert len(squeezed) == 1


def test_default_chain_drops_each_junk_pair_with_its_rule():
    """The rules are registered in filters/default.yaml, in front of grounding where they need
    no pages; a typed not_answerable pair about what the pages lack passes entity grounding."""
    chain = FilterChain.load(ROOT / "filters" / "default.yaml")
    junk = {
        "reply_labels": pair(
            "How many cycles is each battery rated for?",
            "No more than 10 cycles. B1: No more than 10 cycles. B2: No more than 10 cycles.",
        ),
        "boilerplate": pair("How can I help you with your business?", "Brightfern Analytics."),
        "answer_echo": pair(
            "What did the local company build over the Ouse?",
            "What did the local company build over the river?",
        ),
        "entity_grounding": pair(
            "Who built the bridge over the Ouse?",
            "The bridge was built by the British East India Company.",
        ),
    }
    for rule, p in junk.items():
        p.qa_id = rule
    decisions = chain.decide(list(junk.values()))
    for rule, pair_decisions in zip(junk, decisions, strict=True):
        assert pair_decisions[-1].filter == rule and not pair_decisions[-1].passed, (
            rule,
            pair_decisions[-1],
        )
    negative = pair(
        "How did COVID-19 affect the company's staff?",
        "The pages do not say how COVID-19 affected the staff.",
        question_type="not_answerable",
    )
    labels = [d.filter for d in chain.decide([negative])[0] if not d.passed]
    assert "entity_grounding" not in labels
