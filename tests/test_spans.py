"""Answer spans of answer-first generation: chosen per unit, the same on every run, one page's
sentence or clause, bounded, preferring a number, a name or a defined term."""

from collections import Counter

from curation.generate.spans import MAX_CHARS, candidates, choose_span, text_runs

# A page as a PDF's text layer gives it: a heading, a paragraph broken where the page breaks
# its lines, a table one cell a line, a footer.
PAGE = """2. Charging the Battery
The battery can be charged on the bicycle through the port on the left of the down
tube, or removed with the key and charged indoors. A full charge from empty takes about
five hours with the supplied charger. Always charge on a hard surface, away from the
bed and the sofa.
Item
Specification
Charger
42 V, 3 A
Quillmoor Ridgeline E5 | Owner's Manual | Page 2 of 3"""


def test_pdf_lines_join_into_sentences_without_headings_cells_or_footers():
    spans = [span.text for span in candidates([PAGE], [1])]
    assert spans == [
        "The battery can be charged on the bicycle through the port on the left of the down "
        "tube, or removed with the key and charged indoors.",
        "A full charge from empty takes about five hours with the supplied charger.",
        "Always charge on a hard surface, away from the bed and the sofa.",
    ]
    assert all(span.page == 2 for span in candidates([PAGE], [1]))  # 1-based, as prompts show


def test_a_sentence_with_a_number_name_or_defined_term_is_preferred():
    text = (
        "the pump is checked every week by the crew on duty at the station.\n"
        "Each filter is cleaned by hand and then rinsed with water from the tank.\n"
        "The pressure is checked before the crew goes home for the night.\n"
        "The Harlow pump moved 4,200 litres in its first hour of work.\n"
    )
    picks = {
        choose_span([text], [0], seed, f"doc:{i}-{i}").text for seed in range(3) for i in range(20)
    }
    assert picks == {"The Harlow pump moved 4,200 litres in its first hour of work."}


def test_choice_is_deterministic_per_seed_and_unit():
    text = " ".join(
        f"Station {n} pumped {n * 10} litres in its first week of work." for n in range(1, 9)
    )
    pick = [choose_span([text], [0], 0, f"doc:{i}-{i}") for i in range(40)]
    assert pick == [choose_span([text], [0], 0, f"doc:{i}-{i}") for i in range(40)]
    assert pick != [choose_span([text], [0], 1, f"doc:{i}-{i}") for i in range(40)]
    assert len(Counter(span.text for span in pick)) > 4  # units draw different sentences


def test_a_span_never_runs_across_pages_and_a_fragment_is_never_one():
    """A sentence a page break cuts in two is a span on neither page."""
    first = "The Harlow pump was installed in 1998 by the county. Its first overhaul came after"
    second = "the flood of 2011 had filled the pit with 3 metres of silt. Nothing else happened."
    assert choose_span([first, second], [4, 5], 0, "doc:4-5").text == (
        "The Harlow pump was installed in 1998 by the county."
    )
    assert candidates([second], [5]) == []


def test_a_long_sentence_gives_its_clauses_and_spans_stay_bounded():
    long = (
        "The Harlow pump moved 4,200 litres in its first hour, more than any pump the county "
        "had bought before; the Minster pump, bought in 2004 and rebuilt twice since then, "
        "moved 3,100 litres in the same test on the same day in the same pit under the same crew."
    )
    assert len(long) > MAX_CHARS
    texts = [span.text for span in candidates([long], [0])]
    assert texts == long.split("; ")
    assert all(len(text) <= MAX_CHARS for text in texts)
    assert candidates([long.replace("; ", ", ")], [0]) == []  # no clause to cut it into


def test_slide_bullets_are_spans_without_a_full_stop():
    slide = "Q3 2024 at a Glance\n•  Revenue of $18.4M, up 22% year over year\n•  46 new customers signed in the third quarter"
    assert [span.text for span in candidates([slide], [0])] == [
        "Revenue of $18.4M, up 22% year over year",
        "46 new customers signed in the third quarter",
    ]
    assert text_runs("")[:1] == []


def test_a_page_without_a_sentence_has_no_span():
    assert (
        choose_span(["Item\nSpecification\nCharger\n42 V, 3 A", ""], [0, 1], 0, "doc:0-1") is None
    )
