"""The run journal on its own: what a resumed run skips, and how the work of inputs that changed
or left since they were journaled is dropped (`Journal.drop_stale`). Real Arrow chunks written by
`Journal.append`; the run that uses it is tested in test_resume.py."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from output_fixtures import document_units, outcome

from curation.output.journal import JOURNAL, Journal
from curation.output.shards import DatasetWriter
from curation.schema import DECISION_TYPE, OUTCOME_SCHEMA, PAIR_TYPE
from curation.units import error_row
from curation.view.running import RunningFolder

PAIR = [("What grew?", "The budget grew by 10 percent.", True)]
IDENTITY = "f" * 64


def rows(doc_id: str, source: str, n_pages: int = 2) -> list[dict]:
    """The Outcome rows of one whole document: one unit per page."""
    return [outcome(unit, PAIR).to_row() for unit in document_units(doc_id, source, n_pages, 1)]


def append(journal: Journal, *batches: list[dict]) -> None:
    for batch in batches:
        journal.append(pa.Table.from_pylist(batch, schema=OUTCOME_SCHEMA))


def chunk_rows(journal: Path, columns: list[str]) -> list[dict]:
    """The rows of every chunk a journal folder holds on disk, those columns only."""
    rows = []
    for path in sorted(journal.glob("chunk-*.arrow")):
        with pa.memory_map(str(path)) as source:
            rows += pa.ipc.open_file(source).read_all().select(columns).to_pylist()
    return rows


def journaled(out: Path) -> dict[str, set[str]]:
    """source -> doc_ids, over every chunk on disk."""
    found: dict[str, set[str]] = {}
    for row in chunk_rows(out / JOURNAL, ["source", "doc_id"]):
        found.setdefault(row["source"], set()).add(row["doc_id"])
    return found


def test_a_reopened_journal_knows_the_documents_and_units_done(tmp_path: Path) -> None:
    inputs = ["a.pdf", "b.pdf", "c.pdf", "bad.pdf"]
    ids = {"a.pdf": "aaaa", "b.pdf": "bbbb", "c.pdf": "cccc", "bad.pdf": "dddd"}.get
    journal = Journal(tmp_path, IDENTITY, inputs, ids)
    assert not journal.resumed
    b_rows = rows("bbbb", "b.pdf", n_pages=3)
    append(journal, rows("aaaa", "a.pdf"), b_rows[:1])  # b stopped after its first unit
    append(journal, [error_row("dddd", "bad.pdf", "corrupt", "cannot open")])
    assert journal.progress.documents_done == 2

    again = Journal(tmp_path, IDENTITY, inputs, ids)
    assert again.resumed and again.progress.resumed_units == 3
    assert again.documents_done() == {"a.pdf", "bad.pdf"}  # an error row ends its document
    assert again.units_done() == {b_rows[0]["unit_id"]}  # only partly done documents' units
    assert (again.progress.units, again.progress.errors, again.progress.pairs_kept) == (3, 1, 3)
    assert again.progress.changed == again.progress.removed == []


def test_inputs_that_changed_or_left_lose_their_rows_and_the_rest_is_kept(tmp_path: Path) -> None:
    inputs = ["a.pdf", "b.pdf", "c.pdf"]
    journal = Journal(tmp_path, IDENTITY, inputs, {"a.pdf": "a1", "b.pdf": "b1", "c.pdf": "c1"}.get)
    append(journal, rows("b1", "b.pdf"), rows("a1", "a.pdf") + rows("c1", "c.pdf"))
    chunks = sorted((tmp_path / JOURNAL).glob("chunk-*.arrow"))

    # a.pdf was edited (new bytes, a new doc_id); c.pdf is no longer an input.
    resumed = Journal(tmp_path, IDENTITY, ["a.pdf", "b.pdf"], {"a.pdf": "a2", "b.pdf": "b1"}.get)
    assert resumed.progress.changed == ["a.pdf"] and resumed.progress.removed == ["c.pdf"]
    assert journaled(tmp_path) == {"b.pdf": {"b1"}}  # removed from the chunks on disk
    assert resumed.documents_done() == {"b.pdf"}  # a.pdf is ingested again
    assert resumed.progress.resumed_units == 2
    # The chunk left without rows stays, so a new chunk never takes an old name.
    assert sorted((tmp_path / JOURNAL).glob("chunk-*.arrow")) == chunks
    append(resumed, rows("a2", "a.pdf", n_pages=1))
    assert len(list((tmp_path / JOURNAL).glob("chunk-*.arrow"))) == 3
    assert [o.unit.doc_id for o in resumed.outcomes()] == ["a2", "b1", "b1"]  # input order

    # Nothing changed since: nothing is dropped.
    same = Journal(tmp_path, IDENTITY, ["a.pdf", "b.pdf"], {"a.pdf": "a2", "b.pdf": "b1"}.get)
    assert same.progress.changed == same.progress.removed == []
    assert same.documents_done() == {"a.pdf", "b.pdf"}


def test_a_file_edited_between_two_interruptions_keeps_no_rows_of_older_bytes(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path, IDENTITY, ["a.pdf"], {"a.pdf": "a1"}.get)
    append(journal, rows("a1", "a.pdf", n_pages=3)[:1])
    later = Journal(tmp_path, IDENTITY, ["a.pdf"], {"a.pdf": "a2"}.get)
    append(later, rows("a2", "a.pdf", n_pages=3)[:1])
    assert journaled(tmp_path) == {"a.pdf": {"a2"}}
    final = Journal(tmp_path, IDENTITY, ["a.pdf"], {"a.pdf": "a3"}.get)
    assert final.progress.changed == ["a.pdf"] and journaled(tmp_path) == {}


def without(struct: pa.DataType, name: str) -> pa.StructType:
    return pa.struct(
        [f for f in (struct.field(i) for i in range(struct.num_fields)) if f.name != name]
    )


def test_a_chunk_of_an_older_row_format_reads_as_outcomes_with_the_new_fields_null(tmp_path):
    """A chunk journaled before fields were added (a column, a pair's, a decision's) is read as
    Outcomes with those fields null, by the run's assembly (`Journal.outcomes`, then the writer)
    and by the view of a running run (`RunningFolder`), however few columns it reads."""
    decision = without(DECISION_TYPE, "ratings")
    pair = pa.struct(
        [
            pa.field("decisions", pa.list_(decision)) if f.name == "decisions" else f
            for f in without(PAIR_TYPE, "question_type")
        ]
    )
    old = pa.schema(
        [
            pa.field("pairs", pa.list_(pair)) if f.name == "pairs" else f
            for f in OUTCOME_SCHEMA
            if f.name not in ("title_text", "images_sent")
        ]
    )
    row = rows("aaaa", "a.pdf", n_pages=1)[0]
    (tmp_path / JOURNAL).mkdir()
    with pa.ipc.new_file(tmp_path / JOURNAL / "chunk-000000.arrow", old) as writer:
        writer.write_table(pa.Table.from_pylist([row], schema=old))

    (read,) = Journal(tmp_path, IDENTITY, ["a.pdf"], {"a.pdf": "aaaa"}.get).outcomes()
    (viewed,) = RunningFolder(tmp_path).outcomes()
    for made in (read, viewed):
        unit, (kept,) = made.unit, made.reply.pairs
        assert (unit.unit_id, unit.title_text, made.reply.images_sent) == (
            row["unit_id"],
            None,
            None,
        )
        assert (kept.question, kept.question_type, kept.decisions[0].ratings) == (
            PAIR[0][0],
            None,
            None,
        )
    assert read.unit.images == row["images"]
    (meta,) = RunningFolder(tmp_path).sample_meta()
    assert meta["qa_meta"] == [
        {"prompt_id": "docmatix/coverage", "question_type": None, "ratings": [], "rating_min": None}
    ]
    writer = DatasetWriter(tmp_path / "out", rows_per_shard=10, inputs=["a.pdf"])
    writer.add(read)
    assert writer.close({})["counts"]["pairs_kept"] == 1
