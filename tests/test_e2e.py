"""End to end: the real CLI (`curation run` in this process through CliRunner, the session's
Ray), the real bundled SmolLM2 model, real PDFs and bad inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pymupdf
import pytest
from conftest import (
    LENIENT_CHAIN,
    SAMPLES,
    blank_pdf,
    curation_cli,
    make_bad_inputs,
    make_pdf,
)
from datasets import load_dataset
from PIL import Image

# One unit per engine call: a left-padded batch of several units computes in other shapes, and a
# near-tie in the bundled model's sampling can then go the other way, so which units share a batch
# (Ray's timing) would change what the 135M model writes, and whether a pair survives.

RECIPE = """
name: e2e
inputs: ["{inputs}/*.pdf"]
ingest: {{dpi: 72}}
units: {{pages_per_unit: 2}}
generate: {{pairs_per_unit: 2, max_tokens: 96, batch_size: 1, seed: 7, cache_dir: "{cache}"}}
filters: {chain}
output: {{dir: "{out}", rows_per_shard: 1}}
"""


def write_recipe(tmp_path: Path, inputs: Path, out: Path, cache: Path | None = None) -> Path:
    chain = tmp_path / "lenient.yaml"
    chain.write_text(LENIENT_CHAIN)
    recipe = tmp_path / "recipe.yaml"
    cache = cache or Path(f"{out}-cache")
    recipe.write_text(RECIPE.format(inputs=inputs, chain=chain, out=out, cache=cache))
    return recipe


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory, ray_session):
    """Two real PDFs and the four bad inputs, run twice into two output folders: the second run
    with the first run's replies (the same requests, so the same reply cache entries). That a
    fresh `curation run` process gives the shards of a warm one is test_resume.py's (killed
    processes, resumed and compared with a run in this process); that generation gives the same
    replies in another process, test_cluster.py's node-loss test. Each: (out, what it printed)."""
    tmp = tmp_path_factory.mktemp("e2e")
    inputs = tmp / "inputs"
    inputs.mkdir()
    for name in ("water_utility_annual_report.pdf", "quarterly_review_slides.pdf"):
        with pymupdf.open(SAMPLES / name) as doc:  # two pages each keeps the run short
            doc.select([0, 1])
            doc.save(inputs / name, no_new_id=True)
    bad = make_bad_inputs(inputs)
    runs = []
    for name, cache in (("first", None), ("second", Path(f"{tmp / 'first'}-cache"))):
        result = curation_cli("run", str(write_recipe(tmp, inputs, tmp / name, cache=cache)))
        assert result.exit_code == 0, result.output[-3000:]
        runs.append((tmp / name, result.output))
    return inputs, bad, runs


@pytest.mark.e2e
def test_output_loads_with_datasets_as_images_and_texts(mixed_run):
    _, _, [(out, _), _] = mixed_run
    ds = load_dataset("parquet", data_files=str(out / "data" / "*.parquet"), split="train")
    assert ds.num_rows >= 1
    for row in ds:
        assert len(row["images"]) == len(row["pages"]) >= 1
        assert all(isinstance(img, Image.Image) and img.width > 100 for img in row["images"])
        assert row["texts"]
        for turn in row["texts"]:
            assert turn["user"].strip() and turn["assistant"].strip()
            assert turn["source"].split("#")[0].endswith(".pdf")


@pytest.mark.e2e
def test_bad_inputs_are_errors_with_reasons_and_the_run_goes_on(mixed_run):
    _, bad, [(out, said), _] = mixed_run
    errors = pq.read_table(list((out / "errors").glob("*.parquet"))).to_pylist()
    assert {Path(e["source"]).name: e["code"] for e in errors} == {
        path.name: code for code, path in bad.items()
    }
    assert all(e["message"] for e in errors)
    manifest = json.loads((out / "manifest.json").read_text())
    status = {Path(r["path"]).name: r["status"] for r in manifest["inputs"]}
    assert len(status) == 6
    assert status["water_utility_annual_report.pdf"] == "ok"
    assert status["quarterly_review_slides.pdf"] == "ok"
    assert [status[p.name] for p in bad.values()] == ["error"] * 4
    counts = manifest["counts"]
    assert counts["units"] == 2 and counts["pages"] == 4
    assert counts["pairs_kept"] + counts["pairs_rejected"] == counts["pairs_generated"]
    assert sum(counts["errors_by_code"].values()) == 4
    assert "errors: encrypted" in said  # the summary counts them


@pytest.mark.e2e
def test_rerun_gives_identical_shards(mixed_run):
    _, _, [(first, _), (second, _)] = mixed_run
    checksums = [
        [f["sha256"] for f in json.loads((out / "manifest.json").read_text())["files"]["data"]]
        for out in (first, second)
    ]
    assert checksums[0] and checksums[0] == checksums[1]


@pytest.mark.e2e
def test_nothing_processable_exits_non_zero(tmp_path, ray_local):
    inputs = tmp_path / "inputs"
    make_bad_inputs(inputs)
    result = curation_cli("run", str(write_recipe(tmp_path, inputs, tmp_path / "out")))
    assert result.exit_code == 1
    assert "nothing could be processed" in result.output


@pytest.mark.e2e
def test_every_input_is_accounted_for_and_a_name_that_is_not_utf8_is_read(
    tmp_path, ray_local, one_pair_server
):
    """A FIFO, a folder and a link to /dev/zero matched by the glob, and a missing name listed
    beside it, are error rows with codes (never opened); a PDF whose name is raw bytes that are
    not UTF-8 is read by its real name and shown escaped; a PDF of blank pages is read, sent
    neither to OCR nor to the model, its units counted as skipped; the run goes on, exits 0.
    The model: conftest's one_pair_server (a FAKE standing in for vLLM)."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    make_pdf(inputs / "good.pdf", ["The reservoir held 41 million litres in March 2024."])
    odd = make_pdf(tmp_path / "odd.pdf", ["The new pumping station opened on 3 June 2023."])
    odd.rename(inputs / os.fsdecode(b"bad\xff\xfe.pdf"))
    os.mkfifo(inputs / "fifo.pdf")
    (inputs / "dir.pdf").mkdir()
    (inputs / "zero.pdf").symlink_to("/dev/zero")
    (inputs / "blank.pdf").write_bytes(blank_pdf(3))
    (tmp_path / "lenient.yaml").write_text(LENIENT_CHAIN)
    out = tmp_path / "out"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"name: hostile\ninputs: ['{inputs}/*.pdf', '{tmp_path}/typo.pdf']\n"
        "ingest: {dpi: 50, ocr: auto}\n"
        f"generate: {{engine: openai, base_url: '{one_pair_server.base_url}', pairs_per_unit: 1, "
        f"max_tokens: 16, cache_dir: '{tmp_path}/cache'}}\n"
        f"filters: {tmp_path}/lenient.yaml\noutput: {{dir: '{out}'}}\n"
    )
    result = curation_cli("run", str(recipe))
    assert result.exit_code == 0, result.output[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    records = {r["path"]: r for r in manifest["inputs"]}
    shown = f"{inputs}/bad\\xff\\xfe.pdf"
    assert {
        path: (r["status"], [e["code"] for e in r["errors"]]) for path, r in records.items()
    } == {
        f"{inputs}/good.pdf": ("ok", []),
        f"{inputs}/blank.pdf": ("ok", []),
        shown: ("ok", []),
        f"{inputs}/fifo.pdf": ("error", ["not_a_file"]),
        f"{inputs}/dir.pdf": ("error", ["not_a_file"]),
        f"{inputs}/zero.pdf": ("error", ["not_a_file"]),
        f"{tmp_path}/typo.pdf": ("error", ["missing"]),
    }
    assert records[shown]["pages"] == 1 and records[shown]["units"] == 1
    counts = manifest["counts"]
    assert counts["documents"] == 7 and counts["pages_by_text_source"]["none"] == 3
    assert counts["units_skipped"] == {"no_text": records[f"{inputs}/blank.pdf"]["units"]}
    # The model was asked once per readable document, never over the blank pages.
    assert len((tmp_path / "cache" / "sent.log").read_text().split()) == 2
    assert len(one_pair_server.requests) == 2
    assert counts["errors_by_code"] == {"missing": 1, "not_a_file": 3}
    errors = pq.read_table(list((out / "errors").glob("*.parquet"))).to_pylist()
    assert sorted(e["source"] for e in errors) == sorted(
        path for path, r in records.items() if r["status"] == "error"
    )
    said = "".join(result.output.split())  # the terminal wraps long lines
    assert "errors:missing" in said and "errors:not_a_file" in said


def test_invalid_recipe_exits_2_naming_the_field(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("name: x\ninputs: ['*.pdf']\ningest: {dpi: 5}\n")
    result = curation_cli("run", str(recipe))
    said = "".join(result.output.split())  # the terminal wraps long lines
    assert result.exit_code == 2
    assert "ingest.dpi" in said and "".join(str(recipe).split()) in said
