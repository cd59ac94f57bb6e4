"""Every name the inputs give is accounted for (read, or an error row with a code), and a file name
that is not UTF-8 is read by its real bytes and shown escaped by one rule: at expansion, at ingest,
in the writer's manifest and summary, and in `curation filter`."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import LENIENT_CHAIN, curation_cli, make_pdf

from curation.config import ConfigError, IngestConfig, UnitsConfig, load_recipe
from curation.display import print_summary
from curation.files import largest_first, path_text
from curation.ingest import expand_inputs, ingest_document
from curation.output.shards import DatasetWriter
from curation.run import run_inputs
from curation.schema import UNIT_SCHEMA, InputError

ODD = os.fsdecode(b"bad\xff\xfe.pdf")  # as Python holds a name of raw bytes that are not UTF-8


def hostile_folder(folder: Path) -> Path:
    """A good PDF, a FIFO, a folder and a link to /dev/zero all matching `*.pdf`, a page-image
    folder, and a link to nothing."""
    folder.mkdir()
    make_pdf(folder / "good.pdf", ["A short report on reservoir levels."])
    os.mkfifo(folder / "fifo.pdf")
    (folder / "dir.pdf").mkdir()
    (folder / "zero.pdf").symlink_to("/dev/zero")
    (folder / "gone.pdf").symlink_to(folder / "no-such-target.pdf")
    (folder / "scan").mkdir()
    (folder / "scan" / "page-1.png").write_bytes(b"\x89PNG")
    return folder


def refused(errors: list[InputError]) -> dict[str, str]:
    return {Path(error.source).name: error.code for error in errors}


def test_every_name_a_pattern_matches_is_read_or_refused_with_a_code(tmp_path):
    folder = hostile_folder(tmp_path / "in")
    inputs = expand_inputs([f"{folder}/*.pdf", f"{folder}/scan", f"{folder}/absent.pdf"])
    assert inputs.files == [folder / "good.pdf", folder / "scan"]
    assert refused(inputs.refused) == {
        "fifo.pdf": "not_a_file",
        "dir.pdf": "not_a_file",
        "zero.pdf": "not_a_file",
        "gone.pdf": "missing",
        "absent.pdf": "missing",
    }
    messages = {Path(e.source).name: e.message for e in inputs.refused}
    assert "FIFO" in messages["fifo.pdf"] and "/dev/zero" in messages["zero.pdf"]
    assert "page images" in messages["dir.pdf"]


def test_a_folder_holding_other_matches_is_no_input_of_its_own(tmp_path):
    """`dir/**` matches every folder on the way to the files: they are not refused, only the
    empty one is (and a stray file in a page folder is an input, not a page)."""
    folder = tmp_path / "corpus"
    (folder / "a" / "b").mkdir(parents=True)
    make_pdf(folder / "a" / "b" / "r.pdf", ["Text."])
    (folder / "empty").mkdir()
    (folder / "scan").mkdir()
    (folder / "scan" / "page-1.png").write_bytes(b"\x89PNG")
    (folder / "scan" / "notes.txt").write_text("not a page")
    inputs = expand_inputs([f"{folder}/**"])
    assert inputs.files == [
        folder / "a" / "b" / "r.pdf",
        folder / "scan",
        folder / "scan/notes.txt",
    ]
    assert refused(inputs.refused) == {"empty": "not_a_file"}


def write_recipe(tmp_path: Path, inputs: list[str]) -> Path:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"name: r\ninputs: {json.dumps(inputs)}\nfilters: {tmp_path}/chain.yaml\n")
    return recipe


def test_a_missing_name_beside_good_ones_is_an_error_row_and_all_missing_is_refused(tmp_path):
    good = make_pdf(tmp_path / "good.pdf", ["Text."])
    recipe = load_recipe(write_recipe(tmp_path, [str(good), str(tmp_path / "typo.pdf")]))
    inputs = run_inputs(recipe, None)
    assert inputs.files == [good] and refused(inputs.refused) == {"typo.pdf": "missing"}
    nothing = load_recipe(write_recipe(tmp_path, [str(tmp_path / "typo.pdf"), "nowhere/*.pdf"]))
    with pytest.raises(ConfigError, match="no file matches"):
        run_inputs(nothing, None)


def test_a_run_with_nothing_readable_records_why_and_exits_1(tmp_path):
    """Names that are there but cannot be read are no empty recipe: the run writes their error
    rows (no Ray is started for nothing) and says nothing could be processed."""
    os.mkfifo(tmp_path / "in.pdf")
    (tmp_path / "chain.yaml").write_text(LENIENT_CHAIN)
    recipe = write_recipe(tmp_path, [f"{tmp_path}/*.pdf"])
    recipe.write_text(recipe.read_text() + f"output: {{dir: '{tmp_path}/out'}}\n")
    result = curation_cli("run", str(recipe))
    assert result.exit_code == 1 and "nothing could be processed" in result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [(r["path"], r["status"], r["errors"][0]["code"]) for r in manifest["inputs"]] == [
        (f"{tmp_path}/in.pdf", "error", "not_a_file")
    ]


def test_limit_counts_the_documents_it_leaves_out(tmp_path):
    for name in ("a.pdf", "b.pdf", "c.pdf"):
        make_pdf(tmp_path / name, ["Text."])
    os.mkfifo(tmp_path / "d.pdf")
    inputs = run_inputs(load_recipe(write_recipe(tmp_path, [f"{tmp_path}/*.pdf"])), 1)
    assert [p.name for p in inputs.files] == ["a.pdf"] and inputs.cut_by_limit == 2
    assert refused(inputs.refused) == {"d.pdf": "not_a_file"}  # refusals are all recorded


def test_the_manifest_and_summary_name_refused_inputs_and_what_limit_left_out(tmp_path, capsys):
    writer = DatasetWriter(tmp_path / "out", 10, [], cut_by_limit=2)
    writer.refuse(InputError("d0", "typo.pdf", "ingest", "missing", "no such file or folder"))
    writer.refuse(InputError("d1", path_text(ODD), "ingest", "not_a_file", "a FIFO"))
    manifest = writer.close({"recipe_name": "r", "wall_seconds": 0.0})
    records = {
        r["path"]: (r["status"], [e["code"] for e in r["errors"]]) for r in manifest["inputs"]
    }
    assert records == {
        "typo.pdf": ("error", ["missing"]),
        "bad\\xff\\xfe.pdf": ("error", ["not_a_file"]),
    }
    counts = manifest["counts"]
    assert counts["documents"] == 2 and counts["inputs_cut_by_limit"] == 2
    assert counts["errors_by_code"] == {"missing": 1, "not_a_file": 1}
    errors = pq.read_table(tmp_path / "out" / "errors" / "errors-00000-of-00001.parquet")
    assert sorted(errors.column("source").to_pylist()) == ["bad\\xff\\xfe.pdf", "typo.pdf"]
    print_summary(manifest, tmp_path / "out")
    said = capsys.readouterr().err
    assert "inputs left out by --limit" in said and "errors: missing" in said


def test_the_graph_takes_the_largest_inputs_first_and_uris_after_them(tmp_path):
    """largest_first: local files by their bytes, a folder of page images by its files',
    equal sizes and URIs (no request to size them) in their given order."""
    sizes = {"small.pdf": 10, "big.pdf": 300, "twin-a.pdf": 50, "twin-b.pdf": 50, "gone.pdf": -1}
    for name, size in sizes.items():
        if size >= 0:
            (tmp_path / name).write_bytes(b"x" * size)
    scans = tmp_path / "scans"
    scans.mkdir()
    for page in range(2):
        (scans / f"p{page}.png").write_bytes(b"x" * 100)
    given = [
        "s3://bucket/one.pdf",
        *(tmp_path / name for name in sizes),
        scans,
        "s3://bucket/two.pdf",
    ]
    assert [Path(p).name for p in largest_first(given)] == [
        "big.pdf",
        "scans",
        "twin-a.pdf",
        "twin-b.pdf",
        "small.pdf",
        "one.pdf",
        "gone.pdf",
        "two.pdf",
    ]


def test_path_text_escapes_only_the_bytes_that_are_not_utf8():
    assert path_text(Path(ODD)) == "bad\\xff\\xfe.pdf"
    assert path_text("café/ré\\sumé.pdf") == "café/ré\\sumé.pdf"


def test_a_pdf_named_with_bytes_that_are_not_utf8_is_ingested(tmp_path):
    path = Path(
        make_pdf(tmp_path / "plain.pdf", ["First page.", "Second page."]).rename(tmp_path / ODD)
    )
    rows = list(ingest_document(path, IngestConfig(ocr="never", dpi=40), UnitsConfig()))
    assert [row["error_code"] for row in rows] == [None] and rows[0]["pages"] == [0, 1]
    assert rows[0]["source"] == path_text(path) == f"{tmp_path}/bad\\xff\\xfe.pdf"
    table = pa.Table.from_pylist(rows, schema=UNIT_SCHEMA)  # Arrow takes only valid UTF-8
    assert table.column("source").to_pylist() == [path_text(path)]


def test_an_error_message_naming_a_file_that_is_not_utf8_is_shown_escaped(tmp_path):
    path = tmp_path / os.fsdecode(b"scan\xff.png")
    path.write_text("not an image")
    rows = list(ingest_document(path, IngestConfig(), UnitsConfig()))
    assert [row["error_code"] for row in rows] == ["not_image"]
    assert "scan\\xff.png" in rows[0]["error"]
    pa.Table.from_pylist(rows, schema=UNIT_SCHEMA)  # Arrow takes only valid UTF-8


def test_ingest_never_opens_what_is_not_a_regular_file(tmp_path):
    device = tmp_path / "null.pdf"
    device.symlink_to("/dev/null")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "socket.pdf"))
        for path in (device, tmp_path / "socket.pdf"):
            rows = list(ingest_document(path, IngestConfig(), UnitsConfig()))
            assert [(r["error_code"], r["source"]) for r in rows] == [("not_a_file", str(path))]


def flat_parquet(path: Path, answers: list[str]) -> None:
    rows = [{"question": f"What is item {i}?", "answer": a} for i, a in enumerate(answers)]
    with path.open("wb") as fh:  # by its real name: pyarrow takes names as UTF-8 only
        pq.write_table(pa.Table.from_pylist(rows), fh)


def test_filter_accounts_for_every_file_of_its_input_folder(tmp_path):
    folder = tmp_path / "dataset"
    folder.mkdir()
    flat_parquet(folder / os.fsdecode(b"bad\xff.parquet"), ["Forty-two.", ""])
    flat_parquet(folder / "good.parquet", ["Seven."])
    (folder / "dir.parquet").mkdir()
    (folder / "zero.parquet").symlink_to("/dev/zero")
    os.mkfifo(folder / "zz-fifo.parquet")  # sorts last: the code before this change stops earlier
    (tmp_path / "chain.yaml").write_text(LENIENT_CHAIN)
    out = tmp_path / "out"
    result = curation_cli(
        "filter", str(folder), "--chain", str(tmp_path / "chain.yaml"), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    funnel = json.loads((out / "funnel.json").read_text())
    odd = f"{folder}/bad\\xff.parquet"
    assert {Path(e["path"]).name: (e["status"], e.get("code")) for e in funnel["inputs"]} == {
        Path(odd).name: ("ok", None),
        "good.parquet": ("ok", None),
        "dir.parquet": ("error", "not_a_file"),
        "zero.parquet": ("error", "not_a_file"),
        "zz-fifo.parquet": ("error", "not_a_file"),
    }
    assert funnel["errors_by_code"] == {"not_a_file": 3}
    assert funnel["pairs_in"] == 3 and funnel["pairs_kept"] == 2
    rejects = pq.read_table(list((out / "rejects").glob("*.parquet"))).to_pylist()
    assert [r["source"] for r in rejects] == [odd]
    assert "not read (not_a_file)" in result.output
