"""The records a pair and its unit travel in (schema.py): one Pair from the parser to the writer,
one Outcome row per unit, rows written at the stage borders only."""

import pyarrow as pa

from curation.generate.parse import parse_reply
from curation.schema import (
    OUTCOME_SCHEMA,
    Decision,
    Outcome,
    Pair,
    Reply,
    Unit,
    UnitContext,
    first_failure,
)
from curation.seeding import content_id

UNIT = Unit(
    unit_id="doc:0-1",
    doc_id="doc",
    source="/in/report.pdf",
    kind="document",
    doc_pages=2,
    doc_units=1,
    pages=[0, 1],
    texts=["Revenue rose to 1,250.", "Costs fell."],
    text_sources=["layer", "layer"],
    ocr_scores=[None, None],
    images=[b"png0", b"png1"],
    page_dups=[None, None],
    title_text="Annual report",
)


def test_the_parser_returns_pair_records_with_their_unit_scoped_ids():
    [pair] = parse_reply("Q1: What rose?\nA1: Revenue.", unit_id="doc:0-1", question_type="x").pairs
    assert isinstance(pair, Pair)
    assert pair.qa_id == content_id("doc:0-1", "What rose?", "Revenue.")
    assert (pair.question_type, pair.decisions) == ("x", [])


def test_an_outcome_row_round_trips_through_arrow_with_its_pairs_read_against_the_unit():
    pair = Pair("q1", "What rose?", "Revenue.", evidence_pages=[1], question_type="extractive")
    pair.decisions = [Decision("length", True, 3.0), Decision("grounding", False, None, "no")]
    row = Outcome(UNIT, Reply(prompt_id="p", model="m", raw_reply="r", pairs=[pair])).to_row()
    [back] = pa.Table.from_pylist([row], schema=OUTCOME_SCHEMA).to_pylist()
    outcome = Outcome.from_row(back)
    assert outcome.to_row() == back
    [read] = outcome.reply.pairs
    assert read.decisions == pair.decisions
    # The unit the filters read the pair against; it is never written with the pair.
    assert read.unit == UnitContext.of(row)
    assert (read.unit.texts, read.unit.title_text) == (UNIT.texts, "Annual report")
    assert set(read.row()) == {f.name for f in OUTCOME_SCHEMA.field("pairs").type.value_type}


def test_first_failure_is_the_first_rejection_of_records_and_of_rows():
    decisions = [Decision("a", True), Decision("b", False, reason="x"), Decision("c", False)]
    assert first_failure(decisions) is decisions[1]
    assert first_failure([vars(d) for d in decisions]) == vars(decisions[1])
    assert first_failure(decisions[:1]) is None
    assert first_failure(None) is None
