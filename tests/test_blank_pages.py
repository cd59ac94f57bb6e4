"""Blank pages and units without text: no OCR, no LLM call, counted as skipped (`no_text`) in
the manifest, the summary and the card; a real run over a PDF of blank pages."""

from __future__ import annotations

import json

import pytest
from conftest import LENIENT_CHAIN, blank_pdf, curation_cli, make_pdf
from output_fixtures import document_units, outcome

from curation.ingest.quality import mark_textless
from curation.output.card import write_card
from curation.output.shards import DatasetWriter
from curation.schema import Outcome, Unit

BLANK_PAGES = 200


def test_mark_textless_skips_only_units_without_text_and_without_pages_left_for_ocr():
    [unit] = document_units("aaaa1111", "docs/a.pdf", n_pages=2, pages_per_unit=2)
    assert mark_textless(unit) is unit  # text on its pages
    empty = {**unit, "texts": ["", " \n"], "text_sources": ["none", "layer"]}
    assert mark_textless(empty)["skipped"].startswith("no_text: ")
    waiting = {**empty, "text_sources": ["pending_ocr", "none"]}
    assert mark_textless(waiting) is waiting  # OCR may still find text
    repeated = {**empty, "skipped": "duplicate_pages: every page repeats an earlier one"}
    assert mark_textless(repeated) is repeated  # the first reason stays


def test_the_writer_counts_units_without_text_and_the_card_says_why(tmp_path):
    first, second = document_units("aaaa1111", "docs/a.pdf", n_pages=4, pages_per_unit=2)
    blank = mark_textless({**second, "texts": ["", ""], "text_sources": ["none", "none"]})
    writer = DatasetWriter(tmp_path, rows_per_shard=10, inputs=["docs/a.pdf"])
    writer.add(outcome(first, [("Q?", "A.", True)]))
    writer.add(Outcome(Unit.from_row(blank)))  # what generation makes of it: no request, no pairs
    manifest = writer.close({"recipe_name": "blank", "recipe": {}})
    counts = manifest["counts"]
    assert counts["units"] == 2 and counts["units_with_samples"] == 1
    assert counts["units_skipped"] == {"no_text": 1}
    assert counts["pages_by_text_source"] == {"layer": 2, "none": 2}
    assert counts["errors_by_code"] == {}
    write_card(tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert "| units skipped: no page holds text | 1 |" in card
    assert "none of whose pages holds text" in card
    assert "page dedup" not in card  # only the reason that applies is explained


RECIPE = """
name: blank
inputs: ["{inputs}/*.pdf"]
ingest: {{dpi: 36, ocr: auto, ocr_backend: paddleocr, ocr_model_dir: "{no_models}"}}
units: {{pages_per_unit: 2}}
generate: {{engine: openai, base_url: "{base_url}", pairs_per_unit: 1, max_tokens: 32, seed: 3, cache_dir: "{tmp}/cache/responses"}}
filters: {tmp}/lenient.yaml
output: {{dir: "{tmp}/out"}}
"""


@pytest.mark.e2e
def test_a_run_over_blank_pages_asks_neither_ocr_nor_the_model(tmp_path, ray_local, capsys):
    """A real run (Ray, ingest, the OCR actor, `curation run` in-process) whose model is a
    scripted OpenAI-compatible server (a FAKE standing in for vLLM: tests/scripted_server.py).
    The OCR backend is PaddleOCR pointed at an empty folder, so loading an OCR model would fail
    the run: the run finishing shows no page was sent to OCR."""
    from scripted_server import scripted_server

    from curation.config import load_recipe
    from curation.pipeline import build_units

    inputs, no_models = tmp_path / "inputs", tmp_path / "no-models"
    inputs.mkdir()
    no_models.mkdir()
    (inputs / "blank.pdf").write_bytes(blank_pdf(BLANK_PAGES))
    make_pdf(inputs / "report.pdf", ["The pumping station moved 40 ML a day in 2021. " * 4] * 2)
    (tmp_path / "lenient.yaml").write_text(LENIENT_CHAIN)
    reply = "Q1: How much did the station move?\nA1: 40 ML a day."
    with scripted_server(lambda messages: reply) as server:
        recipe = RECIPE.format(
            inputs=inputs, tmp=tmp_path, base_url=server.base_url, no_models=no_models
        )
        (tmp_path / "recipe.yaml").write_text(recipe)
        result = curation_cli("run", str(tmp_path / "recipe.yaml"))
        assert result.exit_code == 0, result.output
        assert len(server.requests) == 1  # report.pdf's unit; none for the blank pages

    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["pages"] == BLANK_PAGES + 2
    assert counts["pages_by_text_source"] == {"layer": 2, "none": BLANK_PAGES}
    assert counts["units"] == BLANK_PAGES // 2 + 1
    assert counts["units_skipped"] == {"no_text": BLANK_PAGES // 2}
    assert counts["units_with_samples"] == 1 and counts["errors_by_code"] == {}
    assert [r["status"] for r in manifest["inputs"]] == ["ok", "ok"]
    [line] = [line for line in result.output.splitlines() if "units skipped (no_text)" in line]
    assert "no LLM call" in line and f" {BLANK_PAGES // 2} " in line  # the run's summary
    card = (tmp_path / "out" / "README.md").read_text()
    assert f"| units skipped: no page holds text | {BLANK_PAGES // 2} |" in card

    # OCR runs in an actor pool (one model per actor, for the run), apart from the ingest tasks.
    build_units(load_recipe(tmp_path / "recipe.yaml"), [inputs / "blank.pdf"]).explain()
    plan = capsys.readouterr().out.split("Physical Plan (Optimized)")[1]
    [actors, tasks] = plan.strip(" -\n").splitlines()[:2]
    assert actors == "ActorPoolMapOperator[MapBatches(OCRActor)]"
    assert tasks == "+- TaskPoolMapOperator[MapBatches(ingest_batch)]"
