"""Citation markers are cleaned out of pairs (default chain) or rejected (docmatix chain), and the
cleaned text and cited pages reach the shards of `curation run` and of `curation filter`."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from output_fixtures import document_units, outcome
from pairs import pair_in
from test_filter_cli import read_folder, write_shards

from curation.filters import FilterChain
from curation.filters.citations import CitationFilter, cited_pages
from curation.output.shards import DatasetWriter
from curation.refilter import filter_dataset
from curation.schema import OUTCOME_SCHEMA, Outcome, Pair
from curation.workers import filter_batch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHAIN = ROOT / "filters" / "default.yaml"
DOCMATIX_CHAIN = ROOT / "filters" / "docmatix.yaml"
# Three pages shown to the model as Page 5, 6 and 7 (0-based pages 4-6 of the document).
PAGES = [4, 5, 6]
TEXTS = [
    "Ridership grew by 12 percent in 2025, as table [2] of the survey shows.",
    "The fleet of 40 buses was renewed in March.",
    "Fares stayed at 2 euros.",
]


def unit_pair(question: str, answer: str, evidence: list[int] | None = None) -> Pair:
    return pair_in(
        unit_id="doc:4-7",
        question=question,
        answer=answer,
        pages=PAGES,
        texts=TEXTS,
        evidence_pages=evidence or [],
    )


def cleaned(answer: str, evidence: list[int] | None = None) -> tuple[Pair, str]:
    citations = CitationFilter()
    pair = unit_pair("How did ridership change?", answer, evidence)
    (decision,) = citations.decide([pair])
    assert decision.passed
    return citations.rewrite(pair), decision.reason


@pytest.mark.parametrize(
    ("answer", "text", "pages"),
    [
        ("It grew by 12 percent [1].", "It grew by 12 percent.", []),
        ("It grew by 12 percent [5].", "It grew by 12 percent.", [5]),
        ("It grew by 12 percent.[^6]", "It grew by 12 percent.", [6]),
        (
            "It grew [page 5], and buses were renewed (p. 6).",
            "It grew, and buses were renewed.",
            [5, 6],
        ),
        ("[Page 5] It grew by 12 percent.", "It grew by 12 percent.", [5]),
        ("It grew (see pages 5-7) in 2025.", "It grew in 2025.", [5, 6, 7]),
        (
            "Fares held [Source: slide 7]; buses were renewed.",
            "Fares held; buses were renewed.",
            [7],
        ),
        ("It grew by 12 percent (pp. 5 and 6).", "It grew by 12 percent.", [5, 6]),
    ],
)
def test_citation_markers_are_cleaned_and_their_pages_recorded(answer, text, pages):
    pair, reason = cleaned(answer)
    assert pair.answer == text
    assert pair.evidence_pages == pages
    assert reason.startswith("removed '")


def test_a_bare_number_is_a_page_only_when_the_prompt_showed_it():
    pair, reason = cleaned("It grew [5][9].", evidence=[5])
    assert pair.answer == "It grew."
    assert pair.evidence_pages == [5]  # 9 is not a page shown; 5 was already there
    assert reason == "removed '[5]', '[9]'"


def test_an_explicit_page_outside_the_unit_is_recorded_for_grounding_to_reject():
    chain = FilterChain.load(DEFAULT_CHAIN)
    pairs = [unit_pair("How did ridership change?", "Ridership grew by 12 percent (page 9).")]
    decisions = chain.decide(pairs)[0]
    assert pairs[0].evidence_pages == [9]
    failed = next(d for d in decisions if not d.passed)
    assert failed.filter == "grounding" and "cites page 9" in failed.reason
    assert pairs[0].answer == "Ridership grew by 12 percent."  # the reject shows what it judged


def test_the_documents_own_reference_mark_is_left_in_place():
    pair, reason = cleaned("Table [2] shows it [1].")
    assert pair.answer == "Table [2] shows it."
    assert reason == "removed '[1]'"


def test_prose_in_brackets_and_parentheses_is_not_a_citation():
    for answer in (
        "Between [2019, 2020] it grew (P1 priority).",
        "It grew (p < 0.05) by 12 percent.",
        "It grew on page 5 by 12 percent.",
    ):
        pair, reason = cleaned(answer)
        assert (pair.answer, pair.evidence_pages, reason) == (answer, [], "")


def test_cited_page_lists_and_ranges():
    assert cited_pages("2, 4-6 and 9") == [2, 4, 5, 6, 9]
    assert cited_pages("3\u20134") == [3, 4]
    assert cited_pages("10-500") == [10, 500]  # too wide to be a range of pages


def test_reject_action_rejects_instead():
    citations = CitationFilter(action="reject")
    pair = unit_pair("How did ridership change [1]?", "It grew.")
    (decision,) = citations.decide([pair])
    assert not decision.passed and decision.reason == "question has citation '[1]'"
    assert citations.rewrite(pair) is pair


def test_later_filters_see_the_cleaned_pair_and_the_docmatix_chain_stays_faithful():
    answer = "Ridership grew by 12 percent in 2025 [page 5]."
    default_pairs = [unit_pair("How did ridership change in 2025?", answer)]
    decisions = FilterChain.load(DEFAULT_CHAIN).decide(default_pairs)[0]
    # bracket_span rejects "[page 5]": it passed because it saw the cleaned answer.
    assert all(d.passed for d in decisions), decisions
    assert decisions[0].filter == "citations" and decisions[0].reason
    assert default_pairs[0].answer == "Ridership grew by 12 percent in 2025."

    docmatix_pairs = [unit_pair("How did ridership change in 2025?", answer)]
    failed = FilterChain.load(DOCMATIX_CHAIN).decide(docmatix_pairs)[0][-1]
    assert not failed.passed and "bracket_span" in failed.reason
    assert docmatix_pairs[0].answer == answer


def test_run_writes_the_cleaned_pairs_to_the_shards(tmp_path):
    """`curation run`'s filter stage (filter_batch) rewrites the Outcome rows; the writer's
    texts, qa_meta and rejects show the cleaned pairs."""
    (unit,) = document_units("aaaa1111", "docs/report.pdf", n_pages=2, pages_per_unit=2)
    made = outcome(
        unit,
        [
            ("By how much did the budget grow on page 1?", "By 10 percent [1].", True),
            ("What grew by 11 percent (p. 2)?", "The budget grew [page 2].", True),
            ("How much did the budget grow?", "The budget grew by 99 percent [2].", True),
        ],
    )
    for pair in made.reply.pairs:
        pair.evidence_pages = [1]  # as the prompt shows pages: 1-based
    batch = pa.Table.from_pylist([made.to_row()], schema=OUTCOME_SCHEMA)
    table = filter_batch(batch, str(DEFAULT_CHAIN))
    writer = DatasetWriter(tmp_path / "out", rows_per_shard=10, inputs=["docs/report.pdf"])
    for filtered in table.to_pylist():
        writer.add(Outcome.from_row(filtered))
    writer.close({})

    (sample,) = read_folder(tmp_path / "out" / "data").to_pylist()
    assert [(t["user"], t["assistant"]) for t in sample["texts"]] == [
        ("By how much did the budget grow on page 1?", "By 10 percent."),
        ("What grew by 11 percent?", "The budget grew."),
    ]
    assert [m["evidence_pages"] for m in sample["qa_meta"]] == [[1], [1, 2]]
    (reject,) = read_folder(tmp_path / "out" / "rejects").to_pylist()
    assert (reject["answer"], reject["filter"]) == ("The budget grew by 99 percent.", "grounding")


def citing_shards(folder: Path) -> Path:
    """Our shard layout (test_filter_cli's planted set) with citations added to two pairs."""
    write_shards(folder)
    path = next((folder / "data").glob("*.parquet"))
    table = pq.read_table(path)
    rows = table.to_pylist()
    first = rows[0]["texts"][0]
    first["user"] += " [1]"
    first["assistant"] = first["assistant"].removesuffix(".") + " (page 2)."
    rows[0]["texts"][2]["assistant"] += " [2]"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    return folder


def test_filter_command_writes_the_cleaned_pairs(tmp_path):
    source = citing_shards(tmp_path / "shards")
    out = tmp_path / "out"
    report = filter_dataset(source, DEFAULT_CHAIN, out)
    assert report["pairs_kept"] == 7  # the planted set's, without page text to ground on
    row = read_folder(out / "data").to_pylist()[0]
    assert row["texts"][0]["user"] == "Who chairs the board of the utility?"
    assert row["texts"][0]["assistant"] == "Elena Marsh chairs the board."
    assert row["texts"][0]["source"] == "report.pdf"
    assert row["texts"][2]["assistant"] == "It was 3.5 bar across the network."
    assert [m["evidence_pages"] for m in row["qa_meta"][:3]] == [[1, 2], [1], [1, 2]]


def test_flat_input_gets_the_cleaned_pair_and_its_pages(tmp_path):
    source = tmp_path / "pairs.jsonl"
    rows = [
        {
            "id": "q0",
            "question": "Who chairs the board [page 1]?",
            "answer": "Elena Marsh chairs the board [2].",
            "context": ["The board is chaired by Elena Marsh.", "Minutes of the board."],
            "evidence_pages": [1],
        }
    ]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    filter_dataset(source, DEFAULT_CHAIN, tmp_path / "out")
    (kept,) = read_folder(tmp_path / "out" / "data").to_pylist()
    assert (kept["question"], kept["answer"]) == (
        "Who chairs the board?",
        "Elena Marsh chairs the board.",
    )
    assert kept["evidence_pages"] == [1, 2]


def test_replay_rewrites_as_decide_did():
    """A second pass over the input takes the staged decisions and replays the rewrites."""
    chain = FilterChain.load(DEFAULT_CHAIN)
    answers = ["Ridership grew by 12 percent [5].", "It grew (page 9).", "It grew [Company]."]
    decided = [unit_pair("How did ridership change?", a) for a in answers]
    decisions = chain.decide(decided)
    replayed = [unit_pair("How did ridership change?", a) for a in answers]
    chain.replay(replayed, decisions)
    assert replayed == decided
    assert [p.answer for p in replayed] == [
        "Ridership grew by 12 percent.",
        "It grew.",
        "It grew [Company].",
    ]


@pytest.mark.e2e
def test_dedup_in_ray_writes_the_same_cleaned_pairs(tmp_path, ray_local):
    """The two-pass filter (dedup in Ray) replays the cleaning in its second pass."""
    source = citing_shards(tmp_path / "shards")
    text = DEFAULT_CHAIN.read_text()
    outs = {}
    for name, settings in {"memory": "backend: memory", "ray": "ray_above_pairs: 1"}.items():
        chain = tmp_path / f"{name}.yaml"
        chain.write_text(text.replace("\ndedup:\n", f"\ndedup:\n  {settings}\n"))
        outs[name] = tmp_path / f"out-{name}"
        filter_dataset(source, chain, outs[name])
    for folder in ("data", "rejects"):
        assert read_folder(outs["ray"] / folder) == read_folder(outs["memory"] / folder), folder
    row = read_folder(outs["ray"] / "data").to_pylist()[0]
    assert row["texts"][0]["user"] == "Who chairs the board of the utility?"
