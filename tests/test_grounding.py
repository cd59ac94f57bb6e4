"""Grounding of derived numbers: each arithmetic step, written-out calculations, and the labeled
set of correct and wrong derived answers over real tables (tests/data/derived_numbers.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT
from grounding_cases import load_cases
from grounding_corpus import load_corpus, split_of, tally
from pairs import pair_in

from curation.filters.grounding import GroundingFilter
from curation.filters.numbers.groups import page_groups
from curation.filters.numbers.quantity import quantities
from curation.filters.numbers.written import written_arithmetic

# Measured: 95.5% kept, 95.5% rejected (docs/benchmarks.md): the goal of issue 13, 95% for both.
KEPT_FLOOR, REJECTED_FLOOR = 0.95, 0.95

TABLE_PAGE = """Table 2. Five-year summary
Measure
2019
2020
2021
Operating revenue ($m)
80.2
83.5
87.0
Operating expenses ($m)
61.7
64.9
66.2
Connections rose from 1,250 in 2022 to 1,512 in 2023, and 14 of 50 stations were upgraded."""


def decide(question: str, answer: str, page: str = TABLE_PAGE, rationale: str | None = None):
    pair = pair_in(
        unit_id=page[:20], question=question, answer=answer, rationale=rationale,
        pages=[0], texts=[page],
    )  # fmt: skip
    return GroundingFilter().decide([pair])[0]


def test_quantities_normalise_separators_currency_scales_percent_and_words():
    found = quantities("$16.1M, 1,250 homes, 28% and three works; Q3 and NMC811 are names")
    assert [(q.value, q.scale, q.percent) for q in found] == [
        (16.1, 1e6, False),
        (1250.0, 1.0, False),
        (28.0, 1.0, True),
        (3.0, 1.0, False),
    ]
    assert quantities("28%")[0].matches(27.6) and not quantities("28%")[0].matches(28.6)
    assert quantities("27.6%")[0].matches(27.64) and not quantities("27.6%")[0].matches(27.7)


def test_table_cells_on_their_own_lines_make_rows_and_columns():
    groups = page_groups(TABLE_PAGE)
    rows = [[q.value for q in g.numbers] for g in groups if g.kind == "row"]
    columns = [[q.value for q in g.numbers] for g in groups if g.kind == "column"]
    assert [80.2, 83.5, 87.0] in rows and [2021.0, 87.0, 66.2] in columns


@pytest.mark.parametrize(
    ("question", "answer", "note"),
    [
        ("How many more connections were there in 2023?", "262 more.", "262=diff(1512,1250)"),
        ("What share of the stations were upgraded?", "28% of them.", "28%=pct(14,50)"),
        ("By what percentage did connections grow?", "They grew by 21.0%.", "21%=pct_change"),
        ("How many times as many connections in 2023 as in 2022?", "1.21 times.", "=ratio"),
        ("What was total operating revenue over 2019 to 2021?", "$250.7 million.", "=sum("),
        ("What were average operating expenses over 2019 to 2021?", "$64.3 million.", "=avg("),
    ],
)
def test_each_operation_supports_a_derived_number_and_says_how(question, answer, note):
    decision = decide(question, answer)
    assert decision.passed, decision.reason
    assert note in decision.reason


def test_an_answer_in_american_spelling_is_grounded_in_a_british_page():
    """The review of the shipped recipes' pairs (docs/review-recipes.md) found a correct answer
    rejected: "31 meters" against the lighthouse history's "The tower rose to 31 metres"."""
    import pymupdf

    from curation.tokens import stem

    with pymupdf.open(ROOT / "data" / "samples" / "lighthouse_history.pdf") as doc:
        page = doc[0].get_text()
    assert "31 metres" in page and "meters" not in page
    question = "What is the maximum height of the lighthouse?"
    assert decide(question, "The maximum height of the lighthouse is 31 meters.", page).passed
    assert not decide(question, "The maximum height of the lighthouse is 35 meters.", page).passed
    spellings = [("metres", "meter"), ("organised", "organized"), ("colour", "colors")]
    assert all(stem(british) == stem(american) for british, american in spellings)
    assert stem("meter") != stem("meteor") and stem("timbre") != stem("timber")


def test_an_unsupported_number_is_named_in_the_reason():
    decision = decide("How many more connections were there in 2023?", "312 more.")
    assert not decision.passed
    assert decision.reason == "answer number 312 is not in the pages nor one step from them"


def test_a_count_of_the_things_an_answer_lists_needs_no_page():
    question = "Which figures does the summary give?"
    listed = decide(question, "Three:\n- Operating revenue\n- Operating expenses\n- Connections")
    assert listed.passed and "3=count(listed)" in listed.reason
    named = decide(question, "Three: operating revenue, operating expenses and connections.")
    assert named.passed
    # A count that does not match what the answer lists is still a number to find on the pages.
    wrong = decide(question, "Three: operating revenue and operating expenses.")
    assert not wrong.passed and "answer number 3 " in wrong.reason


def test_written_arithmetic_must_hold():
    assert [w.holds for w in written_arithmetic("1,250 - 988 = 262")] == [True]
    assert [w.holds for w in written_arithmetic("from 40 to 52, a 30% increase")] == [True]
    assert [w.holds for w in written_arithmetic("$15.1M ($16.1M / 3)")] == [False]
    assert written_arithmetic("from 9 October 2023 to 31 May 2024, a 3 cut") == []
    decision = decide("How many more?", "262 more (1,512 - 1,250 = 272).")
    assert not decision.passed and "1,512 - 1,250 = 272" in decision.reason


def test_the_issue_example_is_rejected_on_the_slides(slides_pdf):
    import pymupdf

    from curation.ingest.pdf import page_text

    with pymupdf.open(slides_pdf) as doc:
        texts = [page_text(page) for page in doc]
    pair = pair_in(
        unit_id="slides", question="What was Q3 2023 revenue?",
        answer="Revenue was $15.1M ($16.1M / 3).", pages=list(range(len(texts))), texts=texts,
    )  # fmt: skip
    decision = GroundingFilter().decide([pair])[0]
    assert not decision.passed and "gives 5.367, not 15.1" in decision.reason


def test_labeled_set_keeps_correct_and_rejects_wrong_derived_answers(tmp_path: Path):
    cases = load_cases(tmp_path)
    assert len(cases) >= 60
    grounding = GroundingFilter()
    decisions = [grounding.decide([c.correct, c.wrong]) for c in cases]
    kept = sum(right.passed for right, _ in decisions) / len(cases)
    rejected = sum(not wrong.passed for _, wrong in decisions) / len(cases)
    assert kept >= KEPT_FLOOR and rejected >= REJECTED_FLOOR, (kept, rejected)


def test_the_corpus_holds_400_labelled_answers_over_four_kinds_split_by_case(tmp_path: Path):
    answers = load_corpus(tmp_path)
    assert len(answers) >= 400
    assert {a.doc_kind for a in answers} == {"financial", "scientific", "prose", "slides"}
    assert {a.wrong_kind for a in answers} == {None, "moved", "transposed", "neighbour", "year"}
    # Every answer of a case is in its case's split, and the split is about 70/30.
    assert all(a.split == split_of(a.case) for a in answers)
    held_out = {a.case for a in answers if a.split == "held_out"}
    assert 0.2 <= len(held_out) / len({a.case for a in answers}) <= 0.4
    assert (
        split_of("wm-lamps-more") == "held_out" and split_of("wm-lamps-total") == "train"
    )  # stable across machines and runs


MINUTES_PAGE = """Minutes of the Public Works Committee
The depot crews repaired 412 lamps in 2023 and 598 in 2024. Crews resurfaced 18.6 km of road.
The lighting budget was 436 thousand dollars, of which 287 thousand dollars went on parts and
149 thousand dollars on overtime. The reserve was cut from 850,000 to 600,000. Pothole complaints fell from 1,940 to
1,315.
The city runs three depots: Northgate, Riverside and Elm Park. Riverside handled 1,845 work orders."""


@pytest.mark.parametrize(
    ("question", "answer", "note"),
    [
        # "over ... years" once read as a difference, and a sum was only of neighbouring cells.
        (
            "How many lamps did the crews repair over 2023 and 2024?",
            "1,010 lamps.",
            "=sum(598,412)",
        ),
        ("How did lamp repairs change between 2023 and 2024?", "About 505 lamps a year.", "=avg("),
        ("How much more was spent on parts than on overtime?", "$138,000 more.", "=diff("),
    ],
)
def test_every_operation_is_tried_whatever_the_wording(question, answer, note):
    decision = decide(question, answer, MINUTES_PAGE)
    assert decision.passed, decision.reason
    assert note in decision.reason


def test_a_percentage_change_down_a_column_is_found():
    page = "Table 1. Temper conditions\nCondition Yield (MPa) Tensile (MPa)\nAs cast 142 188\nPeak aged 268 310"
    decision = decide("By what percentage does peak ageing raise the yield strength over as cast?",
                      "It rises by 88.7%.", page)  # fmt: skip
    assert decision.passed and "88.7%=pct_change(268,142)" in decision.reason


def test_number_words_are_claims_only_as_the_answers_quantity():
    over_years = decide(
        "How many lamps were repaired?", "1,010 lamps over the two years.", MINUTES_PAGE
    )
    assert over_years.passed, over_years.reason
    one_of = "Riverside, one of the city's four depots, handled 1,845 work orders."
    assert decide("How many work orders did Riverside handle?", one_of, MINUTES_PAGE).passed
    # The count a "how many" question asks for is checked against the page.
    wrong = decide("How many depots does the city run?", "The city runs four depots.", MINUTES_PAGE)
    assert not wrong.passed and "answer number 4 " in wrong.reason
    assert decide("How many depots does the city run?", "Three depots.", MINUTES_PAGE).passed


def test_coarse_coincidences_unit_ratios_and_wrong_directions_stay_rejected():
    # 22% is 95/412 x 100 (a share no one asked for): a coarse number needs an operation its
    # wording names.
    page = "Passengers (thousands)\nHarbor Line 412 538 701 466\nBay Express 95 120 162 104"
    coarse = decide("By what percentage did Harbor Line passengers fall from Q3 to Q4?",
                    "They fell by about 22%.", page)  # fmt: skip
    assert not coarse.passed, coarse.reason
    assert decide("By what percentage did Harbor Line passengers fall from Q3 to Q4?",
                  "They fell by 33.5%.", page).passed  # fmt: skip
    # A number with a unit is not a ratio (1,940 / 1,315 = 1.48).
    assert not decide("How much road was resurfaced?", "1.5 km more.", MINUTES_PAGE).passed
    # A cut is a fall: 41.7% is the rise from 600,000 to 850,000, the cut is 29.4%.
    assert not decide(
        "By how much was the reserve cut?", "It was cut by 41.7%.", MINUTES_PAGE
    ).passed
    assert decide("By how much was the reserve cut?", "It was cut by 29.4%.", MINUTES_PAGE).passed


def test_a_number_wrapped_onto_its_own_line_ends_its_sentence():
    sentences = [g for g in page_groups(MINUTES_PAGE) if g.kind == "sentence"]
    assert [1940.0, 1315.0] in [[q.value for q in g.numbers] for g in sentences]


# Measured on the held-out 30% of the corpus (docs/benchmarks.md): 114/129 correct kept (88.4%),
# 59/68 wrong not printed on the page rejected (86.8%): of those, every moved or transposed value
# (56/56), 3 of 12 values derived from the neighbouring row or another year. The goal of issue 28
# (97% / 95%) is not reached with the page alone; the trade-off is in docs/benchmarks.md.
CORPUS_KEPT_FLOOR, CORPUS_REJECTED_FLOOR, CORPUS_OFF_VALUE_FLOOR = 0.88, 0.86, 0.98


def test_held_out_corpus_figures(tmp_path: Path):
    answers = [a for a in load_corpus(tmp_path) if a.split == "held_out"]
    passed = [d.passed for d in GroundingFilter().decide([a.pair for a in answers])]
    figures = tally(answers, passed)["all"]
    off_value = tally(answers, passed, lambda a: a.wrong_kind in ("moved", "transposed"))[True]
    assert figures.kept_share >= CORPUS_KEPT_FLOOR, figures
    assert figures.rejected_share >= CORPUS_REJECTED_FLOOR, figures
    assert off_value.rejected_share >= CORPUS_OFF_VALUE_FLOOR, off_value
