"""Inputs named by URI, read through fsspec: fsspec's in-memory filesystem stands in for an object
store (no S3 or GCS can be reached here; it is a real fsspec filesystem with no local paths), and
`file://` URIs go through the whole run on Ray."""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path

import fsspec
import pymupdf
import pytest
from conftest import LENIENT_CHAIN, SAMPLES, curation_cli, make_pdf
from fsspec.implementations.memory import MemoryFileSystem
from pydantic import ValidationError

from curation.config import ConfigError, IngestConfig, OutputConfig, UnitsConfig, load_recipe
from curation.ingest import expand_inputs, ingest_document
from curation.run import run_recipe


@pytest.fixture
def bucket() -> str:
    """A fresh `memory://` folder holding two sample PDFs and a text file."""
    root = f"memory:///bucket-{uuid.uuid4().hex[:8]}"
    fs = fsspec.filesystem("memory")
    for name in ("lighthouse_history.pdf", "city_council_minutes.pdf"):
        fs.pipe(f"{root}/decks/{name}", (SAMPLES / name).read_bytes())
    fs.pipe(f"{root}/decks/notes.txt", b"not a document")
    return root


def test_a_uri_glob_expands_to_sorted_uris(bucket):
    found = expand_inputs([f"{bucket}/decks/*.pdf", f"{bucket}/decks/city_council_minutes.pdf"])
    assert found.files == [
        f"{bucket}/decks/city_council_minutes.pdf",
        f"{bucket}/decks/lighthouse_history.pdf",
    ]
    none = expand_inputs([f"{bucket}/nothing/*.pdf", f"{bucket}/missing.pdf"])
    assert none.files == []
    assert [(e.source, e.code) for e in none.refused] == [(f"{bucket}/missing.pdf", "missing")]


def test_a_remote_document_gives_the_same_units_as_the_local_file(bucket):
    uri = f"{bucket}/decks/lighthouse_history.pdf"
    units = UnitsConfig(pages_per_unit=2)
    remote = list(ingest_document(uri, IngestConfig(ocr="never"), units))
    local = list(
        ingest_document(SAMPLES / "lighthouse_history.pdf", IngestConfig(ocr="never"), units)
    )
    assert remote and all(row["error_code"] is None for row in remote)
    assert all(row["source"] == uri for row in remote)
    strip = [{k: v for k, v in row.items() if k != "source"} for row in local]
    assert [{k: v for k, v in row.items() if k != "source"} for row in remote] == strip


def test_a_remote_page_image_folder_is_one_document(bucket, tmp_path):
    """A folder of page images named by URI reads like the same local folder: its images are
    its pages, not documents of their own; the URI carries a trailing slash."""
    fs = fsspec.filesystem("memory")
    local = tmp_path / "report-17"
    local.mkdir()
    with pymupdf.open(SAMPLES / "lighthouse_history.pdf") as doc:
        for i in range(3):
            name = f"page-{i + 1}.png"
            doc[i].get_pixmap(dpi=40).save(local / name)
            fs.pipe(f"{bucket}/scans/report-17/{name}", (local / name).read_bytes())
    fs.pipe(f"{bucket}/scans/report-17/.thumbs.png", b"hidden: skipped")
    fs.pipe(f"{bucket}/scans/empty/readme.txt", b"no images here")
    folder = f"{bucket}/scans/report-17/"

    for patterns in ([f"{bucket}/scans/*"], [f"{bucket}/scans/*", f"{bucket}/scans/*/*.png"]):
        found = expand_inputs(patterns)
        assert found.files == [folder]
        # A folder without page images is no document: refused, not dropped.
        assert [(e.source, e.code) for e in found.refused] == [
            (f"{bucket}/scans/empty", "not_a_file")
        ]
    assert expand_inputs([folder]).files == expand_inputs([folder.rstrip("/")]).files == [folder]

    ingest, units = IngestConfig(ocr="never"), UnitsConfig(pages_per_unit=2)
    remote = list(ingest_document(folder, ingest, units))
    assert [len(row["images"]) for row in remote] == [2, 1] and remote[0]["error_code"] is None
    assert all(row["source"] == folder for row in remote)
    same = list(ingest_document(local, ingest, units))
    strip = [{k: v for k, v in row.items() if k != "source"} for row in same]
    assert [{k: v for k, v in row.items() if k != "source"} for row in remote] == strip

    rows = list(ingest_document(f"{bucket}/scans/empty/", ingest, units))
    assert [r["error_code"] for r in rows] == ["no_pages"]
    rows = list(ingest_document(folder, IngestConfig(max_file_mb=0.001), units))
    assert [r["error_code"] for r in rows] == ["too_large"]


def test_unreadable_or_too_large_remote_files_become_error_rows(bucket):
    rows = list(ingest_document(f"{bucket}/gone.pdf", IngestConfig(), UnitsConfig()))
    assert [(r["error_code"], r["source"]) for r in rows] == [("unreadable", f"{bucket}/gone.pdf")]
    assert "not found" in rows[0]["error"]

    big = f"{bucket}/decks/lighthouse_history.pdf"
    rows = list(ingest_document(big, IngestConfig(max_file_mb=0.001), UnitsConfig()))
    assert [r["error_code"] for r in rows] == ["too_large"]
    assert "max_file_mb" in rows[0]["error"]

    rows = list(ingest_document(f"{bucket}/decks/notes.txt", IngestConfig(), UnitsConfig()))
    assert [r["error_code"] for r in rows] == ["unsupported_type"]


class UnsizedStore(MemoryFileSystem):
    """A FAKE store that lists no file sizes, as an HTTP server without Content-Length: fsspec's
    in-memory filesystem with every size hidden (protocol `unsized://`)."""

    protocol = ("unsized",)

    def info(self, path: str, **kwargs) -> dict:
        return {**super().info(path, **kwargs), "size": None}

    def ls(self, path: str, detail: bool = True, **kwargs) -> list:
        found = super().ls(path, detail=detail, **kwargs)
        return [{**entry, "size": None} for entry in found] if detail else found


def test_a_remote_file_of_unknown_size_is_capped_while_it_is_copied(tmp_path, monkeypatch):
    fsspec.register_implementation("unsized", UnsizedStore, clobber=True)
    root = f"unsized:///bucket-{uuid.uuid4().hex[:8]}"
    fs = fsspec.filesystem("unsized")
    pdf = (SAMPLES / "lighthouse_history.pdf").read_bytes()
    fs.pipe(f"{root}/report.pdf", pdf)
    fs.pipe(f"{root}/scans/page-1.png", pdf)  # big enough; refused before it is read as an image
    assert fs.size(f"{root}/report.pdf") is None
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the copies go

    half = IngestConfig(max_file_mb=len(pdf) / 2 / 2**20)
    for uri in (f"{root}/report.pdf", f"{root}/scans/"):
        rows = list(ingest_document(uri, half, UnitsConfig()))
        assert [(r["error_code"], r["source"]) for r in rows] == [("too_large", uri)]
        assert "counted while copying it (ingest.max_file_mb:" in rows[0]["error"]
        assert list(tmp_path.iterdir()) == []  # the partial copy is gone

    units = UnitsConfig(pages_per_unit=2)
    rows = list(ingest_document(f"{root}/report.pdf", IngestConfig(ocr="never"), units))
    local = list(
        ingest_document(SAMPLES / "lighthouse_history.pdf", IngestConfig(ocr="never"), units)
    )
    assert [r["texts"] for r in rows] == [r["texts"] for r in local]


def test_a_store_without_its_driver_is_a_config_error_naming_the_package(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\ninputs: ['gs://no-such-bucket/*.pdf']\nfilters: {tmp_path}/c\n")
    with pytest.raises(ConfigError, match="gcsfs"):
        run_recipe(load_recipe(recipe), out_dir=tmp_path / "out")


def test_an_output_uri_is_refused_with_the_reason():
    with pytest.raises(ValidationError, match="local or shared"):
        OutputConfig(dir="s3://bucket/out")


@pytest.mark.e2e
def test_a_run_over_file_uris_on_ray_records_the_uris(tmp_path, ray_local, one_pair_server):
    inputs = tmp_path / "in"
    inputs.mkdir()
    # What is checked is how the input is named, not the pairs: the model is conftest's
    # one_pair_server (a FAKE standing in for vLLM).
    make_pdf(inputs / "lighthouse_history.pdf", ["The lighthouse was built in 1871."])
    (tmp_path / "chain.yaml").write_text(LENIENT_CHAIN)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"name: uris\ninputs: ['file://{inputs}/*.pdf']\ningest: {{ocr: never, dpi: 60}}\n"
        "units: {pages_per_unit: 4}\n"
        f"generate: {{engine: openai, base_url: '{one_pair_server.base_url}', pairs_per_unit: 1, "
        f"max_tokens: 16, cache_dir: '{tmp_path}/cache'}}\n"
        f"filters: {tmp_path}/chain.yaml\noutput: {{dir: '{tmp_path}/out'}}\n"
    )
    result = curation_cli("run", str(recipe))
    assert result.exit_code == 0, result.output[-3000:]
    manifest = json.loads(Path(tmp_path / "out" / "manifest.json").read_text())
    uri = f"file://{inputs}/lighthouse_history.pdf"
    assert [(r["path"], r["status"]) for r in manifest["inputs"]] == [(uri, "ok")]
    assert manifest["inputs"][0]["pages"] > 0 and len(one_pair_server.requests) == 1
    assert not any(Path("/tmp").glob("curation-input-*/lighthouse_history.pdf"))
