"""Every kind of source: born-digital PDF, scanned PDF, PPTX, folder of PNG pages, in one whole
run: each is read with the right text source, and each gives a sample.

Real LibreOffice, real RapidOCR; the run adds real Ray and a scripted LLM server.
"""

from __future__ import annotations

import json
from pathlib import Path

import pymupdf
import pytest
from conftest import LENIENT_CHAIN, SAMPLES, curation_cli, make_deck
from datasets import load_dataset
from scripted_server import message_text, scripted_server

RECIPE = """
name: mixed
inputs: ["{inputs}/*"]
ingest: {{dpi: 100}}
units: {{pages_per_unit: 2}}
generate: {{engine: openai, base_url: "{base_url}", model: "{model}", pairs_per_unit: 1,
            max_tokens: 96, seed: 3, cache_dir: "{out}-cache"}}
filters: {chain}
output: {{dir: "{out}"}}
"""
SLIDES = [
    (
        "Harbor Ferry Ridership",
        "Ridership grew from 1.2 million to 1.5 million trips in 2025 on the east line.",
    ),
    (
        "Fleet Renewal Plan",
        "Four hybrid ferries replace the diesel boats by 2028, funded by a regional bond.",
    ),
]


def render_png(pdf: Path, page: int, dpi: int = 150) -> bytes:
    with pymupdf.open(pdf) as doc:
        return doc[page].get_pixmap(dpi=dpi).tobytes("png")


def make_scanned_pdf(path: Path) -> None:
    """An image-only PDF: a rendered page placed as a picture, no text layer."""
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    page.insert_image(page.rect, stream=render_png(SAMPLES / "lighthouse_history.pdf", 0))
    doc.save(path, no_new_id=True)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """One input of each kind: born-digital PDF, scanned PDF, PPTX deck, folder of PNG pages."""
    inputs = tmp_path_factory.mktemp("mixed") / "inputs"
    (inputs / "scan_pages").mkdir(parents=True)
    with pymupdf.open(SAMPLES / "water_utility_annual_report.pdf") as doc:
        doc.select([0])
        doc.save(inputs / "born_digital.pdf", no_new_id=True)
    make_scanned_pdf(inputs / "scanned.pdf")
    make_deck(
        inputs / "deck.pptx",
        SLIDES,
        {i: f"Speaker notes for {t}." for i, (t, _) in enumerate(SLIDES)},
    )
    for page in (0, 1):
        png = render_png(SAMPLES / "city_council_minutes.pdf", page)
        (inputs / "scan_pages" / f"page{page + 1}.png").write_bytes(png)
    return inputs


EXPECTED_SOURCES = {
    "born_digital.pdf": "layer",
    "scanned.pdf": "ocr",
    "deck.pptx": "layer",
    "scan_pages": "ocr",
}


def reply(messages: list[dict]) -> str:
    """A question on the unit's first words, answered with them."""
    words = message_text(messages).split("Page 1", 1)[-1].split()[:8]
    return f"Q1: What does the first page begin with?\nA1: {' '.join(words)}."


@pytest.mark.e2e
def test_a_run_over_every_kind_of_source_gives_samples_of_each(
    ray_local, inputs: Path, tmp_path: Path
) -> None:
    """The one whole run over mixed sources: `curation run` (in this process, the session's Ray),
    real LibreOffice and real RapidOCR; its model is a scripted OpenAI-compatible server (a FAKE
    standing in for vLLM: tests/scripted_server.py) that answers every unit, so that each kind
    of source surely gives a sample (the bundled model's own runs: test_e2e.py, test_resume.py).
    The shards load with `datasets` and each sample says how its text was read."""
    chain = tmp_path / "lenient.yaml"
    chain.write_text(LENIENT_CHAIN)
    out = tmp_path / "out"
    recipe = tmp_path / "recipe.yaml"
    with scripted_server(reply) as server:
        recipe.write_text(
            RECIPE.format(
                inputs=inputs, chain=chain, out=out, base_url=server.base_url, model=server.model_id
            )
        )
        result = curation_cli("run", str(recipe))
        assert result.exit_code == 0, result.output[-3000:]
        assert len(server.requests) == 4  # one per unit
        asked = [message_text(request["messages"]) for request in server.requests]

    manifest = json.loads((out / "manifest.json").read_text())
    assert {r["status"] for r in manifest["inputs"]} == {"ok"}
    assert manifest["counts"]["pages_by_text_source"] == {"layer": 3, "ocr": 3}
    ds = load_dataset("parquet", data_files=str(out / "data" / "*.parquet"), split="train")
    by_source = {Path(row["texts"][0]["source"].split("#")[0]).name: row for row in ds}
    assert set(by_source) == set(EXPECTED_SOURCES)
    for name, source in EXPECTED_SOURCES.items():
        meta = by_source[name]["page_meta"]
        assert [m["text_source"] for m in meta] == [source] * len(meta), name
        if source == "ocr":
            assert all(0 < m["ocr_score"] <= 1 for m in meta), name
        assert len(by_source[name]["images"]) == len(meta)
        assert by_source[name]["texts"][0]["assistant"].strip(".")  # the page's own words
    assert len(by_source["scan_pages"]["images"]) == 2
    deck = by_source["deck.pptx"]["images"]
    assert len(deck) == 2 and deck[0].width > deck[0].height  # 16:9 slides
    # The deck's speaker notes reach the model with their slide's text.
    assert any("Speaker notes for Harbor Ferry Ridership." in text for text in asked)
