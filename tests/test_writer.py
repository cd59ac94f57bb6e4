import json

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import load_dataset
from output_fixtures import outcome
from PIL import Image

from curation.config import IngestConfig, UnitsConfig
from curation.ingest import ingest_document
from curation.output.shards import DatasetWriter, ShardSink
from curation.units import error_row


def test_writer_gives_hf_loadable_shards_and_accounts_for_everything(tmp_path, report_pdf):
    units = list(ingest_document(report_pdf, IngestConfig(dpi=50), UnitsConfig(pages_per_unit=1)))
    assert len(units) == 3
    writer = DatasetWriter(tmp_path, rows_per_shard=2, inputs=[str(report_pdf), "broken.pdf"])
    writer.add(outcome(units[0], [("Who?", "Ada.", True), ("Bad?", "Yes.", False)], judge=1.0))
    writer.add(
        outcome(
            units[1], [("When?", "In 2025.", True)], parse_errors=("question without an answer",)
        )
    )
    writer.add(outcome(units[2], [("Where?", "Here.", True)]))
    writer.add(outcome(error_row("e0", "broken.pdf", "corrupt", "cannot open"), []))
    manifest = writer.close({"recipe_name": "t"})

    shards = sorted(p.name for p in (tmp_path / "data").glob("*.parquet"))
    assert shards == ["train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]
    ds = load_dataset("parquet", data_files=str(tmp_path / "data" / "*.parquet"), split="train")
    assert ds.num_rows == 3
    first = ds[0]
    assert first["id"] == units[0]["unit_id"]
    assert isinstance(first["images"][0], Image.Image)
    assert first["texts"] == [
        {"user": "Who?", "assistant": "Ada.", "source": f"{report_pdf}#pages=1-1"}
    ]
    assert first["qa_meta"][0]["scores"] == [{"filter": "judge", "score": 1.0, "reason": ""}]

    rejects = pq.read_table(next((tmp_path / "rejects").glob("*.parquet"))).to_pylist()
    assert sorted((r["filter"], r["reason"].split(":")[0]) for r in rejects) == [
        ("parse", "1 unreadable"),
        ("rule", "bad"),
    ]
    errors = pq.read_table(next((tmp_path / "errors").glob("*.parquet"))).to_pylist()
    assert [(e["source"], e["code"]) for e in errors] == [("broken.pdf", "corrupt")]

    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    status = {r["path"]: r["status"] for r in on_disk["inputs"]}
    assert status == {str(report_pdf): "ok", "broken.pdf": "error"}
    counts = on_disk["counts"]
    assert (counts["pairs_generated"], counts["pairs_kept"], counts["pairs_rejected"]) == (4, 3, 1)
    assert counts["errors_by_code"] == {"corrupt": 1}
    assert [f["rows"] for f in on_disk["files"]["data"]] == [2, 1]
    assert not (tmp_path / ".staging").exists()

    # The page images are stored as they are (no dictionary, no Snappy: PNGs are compressed
    # and unique); the other columns keep Parquet's dictionary and Snappy.
    column = {
        chunk.path_in_schema: chunk
        for path in (tmp_path / "data").glob("*.parquet")
        for group in [pq.ParquetFile(path).metadata.row_group(0)]
        for chunk in (group.column(i) for i in range(group.num_columns))
    }
    images = column["images.list.element.bytes"]
    assert images.compression == "UNCOMPRESSED" and not images.has_dictionary_page
    source = column["texts.list.element.source"]
    assert source.compression == "SNAPPY" and source.has_dictionary_page


def test_duplicate_document_is_recorded_not_written_twice(tmp_path, report_pdf):
    unit = next(ingest_document(report_pdf, IngestConfig(dpi=50, max_pages=1), UnitsConfig()))
    writer = DatasetWriter(tmp_path, rows_per_shard=10, inputs=["a.pdf", "b.pdf"])
    writer.add(outcome({**unit, "source": "a.pdf"}, [("Q?", "A.", True)]))
    writer.add(outcome({**unit, "source": "b.pdf"}, [("Q?", "A.", True)]))
    manifest = writer.close({})
    assert manifest["counts"]["units_with_samples"] == 1
    assert {r["path"]: r["status"] for r in manifest["inputs"]} == {
        "a.pdf": "ok",
        "b.pdf": "duplicate",
    }
    assert manifest["counts"]["errors_by_code"] == {"duplicate_document": 1}


def test_a_shard_is_written_in_row_groups_as_its_rows_come(tmp_path):
    """Rows reach the open part file a row group (about `group_bytes`) at a time, not all at the
    close; the file is cut at `bytes_per_file`, and its rows are the rows added, in order."""
    schema = pa.schema([("id", pa.string()), ("image", pa.binary())])
    sink = ShardSink(tmp_path, "train", schema, 1000, bytes_per_file=10_000, group_bytes=2_500)
    rows = [{"id": f"r{i}", "image": bytes([i]) * 1_000} for i in range(25)]
    for row in rows[:3]:
        sink.add(row)
    assert len(list(tmp_path.glob(".part-*.parquet"))) == 1  # a group on disk, the file open
    assert not sink.pending
    for row in rows[3:]:
        sink.add(row)
    files = sink.close()
    assert [f["rows"] for f in files] == [10, 10, 5]
    read = [r for f in files for r in pq.read_table(tmp_path / f["file"]).to_pylist()]
    assert read == rows
    groups = [pq.ParquetFile(tmp_path / f["file"]).metadata.num_row_groups for f in files]
    assert groups == [4, 4, 2]  # 3 + 3 + 3 + 1 rows, twice, then 3 + 2
