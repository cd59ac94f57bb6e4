"""End to end over every kind of source: born-digital PDF, scanned PDF, PPTX, folder of PNG pages.

Real LibreOffice, real RapidOCR, real Ray and the real bundled model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pymupdf
import pytest
from conftest import LENIENT_CHAIN, SAMPLES, make_deck, run_curation
from datasets import load_dataset

pytestmark = pytest.mark.e2e

RECIPE = """
name: mixed
inputs: ["{inputs}/*"]
ingest: {{dpi: 100}}
units: {{pages_per_unit: 2}}
generate: {{pairs_per_unit: 2, max_tokens: 96, batch_size: 1, seed: 3, cache_dir: "{out}-cache"}}
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
def mixed_output(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("mixed")
    inputs = tmp / "inputs"
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
    chain = tmp / "lenient.yaml"
    chain.write_text(LENIENT_CHAIN)
    recipe = tmp / "recipe.yaml"
    recipe.write_text(RECIPE.format(inputs=inputs, chain=chain, out=tmp / "out"))
    result = run_curation("run", str(recipe))
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "out"


def test_every_kind_of_source_gives_samples_with_the_right_text_source(mixed_output):
    ds = load_dataset("parquet", data_files=str(mixed_output / "data" / "*.parquet"), split="train")
    by_source = {Path(row["texts"][0]["source"].split("#")[0]).name: row for row in ds}
    assert set(by_source) == {"born_digital.pdf", "scanned.pdf", "deck.pptx", "scan_pages"}
    expected = {
        "born_digital.pdf": "layer",
        "scanned.pdf": "ocr",
        "deck.pptx": "layer",
        "scan_pages": "ocr",
    }
    for name, source in expected.items():
        meta = by_source[name]["page_meta"]
        assert [m["text_source"] for m in meta] == [source] * len(meta), name
        if source == "ocr":
            assert all(0 < m["ocr_score"] <= 1 for m in meta)
    assert len(by_source["scan_pages"]["images"]) == 2
    assert len(by_source["deck.pptx"]["images"]) == 2
    assert by_source["deck.pptx"]["images"][0].width > by_source["deck.pptx"]["images"][0].height


def test_manifest_counts_pages_by_text_source(mixed_output):
    manifest = json.loads((mixed_output / "manifest.json").read_text())
    assert manifest["counts"]["pages_by_text_source"] == {"layer": 3, "ocr": 3}
    assert {r["status"] for r in manifest["inputs"]} == {"ok"}
