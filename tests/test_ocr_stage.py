"""The OCR stage on Unit rows, with the real RapidOCR backend."""

import pymupdf
import pytest

from curation.config import IngestConfig, UnitsConfig
from curation.ingest import expand_inputs, ingest_document
from curation.ingest.ocr_stage import OCRStage
from curation.ingest.slides import NOTES_HEADING


@pytest.fixture(scope="module")
def stage() -> OCRStage:
    return OCRStage(IngestConfig())


def slide_unit(slides_pdf) -> dict:
    return next(ingest_document(slides_pdf, IngestConfig(dpi=100, ocr="always"), UnitsConfig()))


def test_pending_pages_get_ocr_text_score_and_keep_speaker_notes(stage, slides_pdf):
    unit = slide_unit(slides_pdf)
    assert unit["text_sources"] == ["pending_ocr", "pending_ocr"]
    with pymupdf.open(slides_pdf) as doc:
        title_words = doc[0].get_text().split()[:3]
    unit["texts"][0] += f"{NOTES_HEADING}Remember the budget slide."
    [done] = stage([unit])
    assert done["text_sources"] == ["ocr", "ocr"]
    assert all(0 < score <= 1 for score in done["ocr_scores"])
    assert all(word in done["texts"][0] for word in title_words)
    assert done["texts"][0].endswith(f"{NOTES_HEADING}Remember the budget slide.")


def test_unreadable_image_is_marked_not_dropped(stage, slides_pdf):
    unit = slide_unit(slides_pdf)
    unit["images"][1] = b"not an image"
    [done] = stage([unit])
    assert done["text_sources"][1] == "ocr_failed"
    assert len(done["images"]) == 2


def test_layer_pages_are_left_alone(report_pdf):
    unit = next(ingest_document(report_pdf, IngestConfig(), UnitsConfig()))
    before = list(unit["texts"])
    [done] = OCRStage(IngestConfig(), backend=None)([unit])
    assert done["texts"] == before and done["text_sources"] == ["layer", "layer"]


def test_a_folder_of_page_images_is_one_input(tmp_path):
    pages = tmp_path / "scans"
    pages.mkdir()
    for name in ("p1.png", "p2.png"):
        (pages / name).write_bytes(b"\x89PNG")
    (tmp_path / "report.pdf").write_bytes(b"%PDF-")
    found = expand_inputs([str(tmp_path / "*"), str(pages / "*.png")])
    assert found == [tmp_path / "report.pdf", pages]
