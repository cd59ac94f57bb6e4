import io
import time

import pymupdf
import pytest
from conftest import blank_pdf, make_pdf
from PIL import Image

from curation.config import IngestConfig, UnitsConfig
from curation.ingest import document_id, expand_inputs, ingest_document, iter_pages
from curation.ingest.errors import IngestError
from curation.ingest.render import BLANK_SPREAD, is_blank


def test_pdf_pages_carry_text_layer_and_rendered_image(report_pdf):
    pages = list(iter_pages(report_pdf, "d", IngestConfig()))
    assert len(pages) == pages[0].n_pages >= 3
    assert [p.page for p in pages] == list(range(len(pages)))
    first = pages[0]
    assert first.text_source == "layer"
    assert len(first.text) > 200
    image = Image.open(io.BytesIO(first.image))
    assert image.format == "PNG"
    assert image.size == (first.width, first.height)
    # 150 dpi on a Letter/A4 page: roughly 1,240-1,275 px wide.
    assert 1200 <= image.width <= 1300


def test_text_follows_reading_order(tmp_path):
    path = make_pdf(
        tmp_path / "order.pdf", ["First paragraph on top.\n\n\n\nSecond paragraph below."]
    )
    text = next(iter_pages(path, "d", IngestConfig())).text
    assert text.index("First") < text.index("Second")


def test_longest_side_is_capped(report_pdf):
    page = next(iter_pages(report_pdf, "d", IngestConfig(dpi=600, max_image_side=1000)))
    assert max(page.width, page.height) == 1000


def test_jpeg_output(report_pdf):
    page = next(iter_pages(report_pdf, "d", IngestConfig(image_format="jpeg")))
    assert Image.open(io.BytesIO(page.image)).format == "JPEG"


def test_grayscale_render(report_pdf):
    page = next(iter_pages(report_pdf, "d", IngestConfig(grayscale=True)))
    assert Image.open(io.BytesIO(page.image)).mode == "L"


def test_page_cap_reads_the_first_pages_then_records_the_rest(tmp_path):
    path = tmp_path / "long.pdf"
    with pymupdf.open("pdf", blank_pdf(10_000)) as doc:
        for index in range(3):
            doc[index].insert_text((72, 72), f"Page {index} of a very long report.")
        doc.save(path, no_new_id=True)
    start = time.perf_counter()
    rows = list(ingest_document(path, IngestConfig(dpi=36, max_pages=3), UnitsConfig()))
    assert time.perf_counter() - start < 30
    assert [r["pages"] for r in rows[:-1]] == [[0, 1], [2]]
    assert rows[-1]["error_code"] == "page_cap"
    assert "10000 pages" in rows[-1]["error"]


def test_a0_page_at_high_dpi_is_capped_before_rendering(tmp_path):
    path = make_pdf(tmp_path / "a0.pdf", ["A poster-sized page."], width=2384, height=3370)
    start = time.perf_counter()
    page = next(iter_pages(path, "d", IngestConfig(dpi=600)))
    assert max(page.width, page.height) <= 2940
    assert time.perf_counter() - start < 20


def test_landscape_deck_is_slides(slides_pdf, report_pdf):
    assert next(iter_pages(slides_pdf, "d", IngestConfig())).kind == "slides"
    assert next(iter_pages(report_pdf, "d", IngestConfig())).kind == "document"


def drawn_pdf(path, marks: list[tuple[str, str]]) -> object:
    """One Letter page per mark, none with a text layer: ("ink", _) a scanned-looking page (a
    filled box, pixels only), ("blank", _) nothing, ("hidden", text) text drawn invisibly (a
    text layer, no ink)."""
    doc = pymupdf.open()
    for kind, text in marks:
        page = doc.new_page()
        if kind == "ink":
            page.draw_rect(pymupdf.Rect(100, 100, 300, 160), color=(0, 0, 0), fill=(0.2, 0.2, 0.2))
        elif kind == "hidden":
            page.insert_text((72, 72), text, render_mode=3)
    doc.save(path, no_new_id=True)
    doc.close()
    return path


def test_page_without_text_goes_to_ocr_unless_it_is_blank_or_ocr_is_off(tmp_path):
    path = drawn_pdf(tmp_path / "scan.pdf", [("ink", ""), ("blank", "")])
    pages = list(iter_pages(path, "d", IngestConfig()))
    assert [p.text_source for p in pages] == ["pending_ocr", "none"]  # blank: nothing to read
    assert [p.text_source for p in iter_pages(path, "d", IngestConfig(ocr="always"))] == [
        "pending_ocr",
        "none",
    ]
    never = IngestConfig(ocr="never")
    assert [p.text_source for p in iter_pages(path, "d", never)] == ["none", "none"]
    assert Image.open(io.BytesIO(pages[1].image)).size == (pages[1].width, pages[1].height)


def test_a_blank_page_keeps_a_short_text_layer_as_ocr_would_have(tmp_path):
    """OCR finds nothing on a blank page, and the OCR stage then keeps the layer: the same
    row, without the OCR."""
    path = drawn_pdf(tmp_path / "hidden.pdf", [("hidden", "p. 12")])
    [page] = iter_pages(path, "d", IngestConfig(ocr_dpi=300))
    assert (page.text, page.text_source, page.ocr_image) == ("p. 12", "layer", None)


def test_a_pdf_of_blank_pages_sends_no_page_to_ocr(tmp_path):
    path = tmp_path / "blank.pdf"
    path.write_bytes(blank_pdf(200))
    cfg = IngestConfig(dpi=36, ocr_dpi=72)
    rows = list(ingest_document(path, cfg, UnitsConfig()))
    assert len(rows) == 100 and all(row["error_code"] is None for row in rows)
    assert {s for row in rows for s in row["text_sources"]} == {"none"}
    assert not any("ocr_images" in row for row in rows)  # nothing rendered for OCR either


def test_blank_means_no_ink_at_the_render_resolution():
    white = Image.new("RGB", (1275, 1650), "white")
    assert is_blank(white) and is_blank(white.convert("L"))
    assert is_blank(Image.new("RGB", (640, 480), (20, 40, 160)))  # a plain slide background
    faint = white.copy()
    faint.putpixel((10, 10), (255 - BLANK_SPREAD,) * 3)  # within the spread: no readable mark
    assert is_blank(faint)
    dot = white.copy()
    dot.putpixel((600, 800), (90, 90, 90))  # one grey pixel of 2 million: ink
    assert not is_blank(dot) and not is_blank(dot.convert("L")) and not is_blank(dot.convert("P"))
    tinted = white.copy()
    tinted.putpixel((0, 0), (255, 255, 200))  # one channel off: a yellow mark on white
    assert not is_blank(tinted)


def test_born_digital_page_keeps_its_layer_and_always_forces_ocr(report_pdf):
    assert next(iter_pages(report_pdf, "d", IngestConfig())).text_source == "layer"
    assert (
        next(iter_pages(report_pdf, "d", IngestConfig(ocr="always"))).text_source == "pending_ocr"
    )


def test_max_pixels_caps_the_render(report_pdf):
    page = next(iter_pages(report_pdf, "d", IngestConfig(dpi=300, max_pixels=1_000_000)))
    assert page.width * page.height <= 1_000_000


@pytest.mark.parametrize("code", ["empty", "not_pdf", "corrupt", "encrypted"])
def test_bad_pdf_raises_clear_error(bad_inputs, code):
    with pytest.raises(IngestError) as err:
        list(iter_pages(bad_inputs[code], "d", IngestConfig()))
    assert err.value.code == code
    assert err.value.message


def test_unsupported_extension(tmp_path):
    path = tmp_path / "table.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(IngestError) as err:
        list(iter_pages(path, "d", IngestConfig()))
    assert err.value.code == "unsupported_type"


def test_bad_document_becomes_one_error_row(bad_inputs):
    rows = list(ingest_document(bad_inputs["encrypted"], IngestConfig(), UnitsConfig()))
    assert len(rows) == 1
    assert rows[0]["error_code"] == "encrypted"
    assert rows[0]["source"] == str(bad_inputs["encrypted"])
    assert rows[0]["pages"] == []


def test_units_of_a_document(report_pdf):
    rows = list(ingest_document(report_pdf, IngestConfig(), UnitsConfig(pages_per_unit=2)))
    assert [r["pages"] for r in rows] == [[0, 1], [2]]
    assert all(r["doc_units"] == 2 and r["error_code"] is None for r in rows)
    assert rows[0]["unit_id"] == f"{document_id(report_pdf)}:0-1"
    assert len(rows[0]["images"]) == len(rows[0]["texts"]) == 2


def test_doc_id_is_a_content_hash(tmp_path, report_pdf):
    copy = tmp_path / "copy.pdf"
    copy.write_bytes(report_pdf.read_bytes())
    assert document_id(copy) == document_id(report_pdf)
    assert len(document_id(copy)) == 16


def test_expand_inputs_sorted_and_unique(tmp_path):
    for name in ("b.pdf", "a.pdf"):
        (tmp_path / name).write_bytes(b"%PDF-")
    (tmp_path / "sub").mkdir()
    found = expand_inputs([str(tmp_path / "*.pdf"), str(tmp_path / "a.pdf"), str(tmp_path / "*")])
    assert [p.name for p in found.files] == ["a.pdf", "b.pdf"]
    assert [(e.source, e.code) for e in found.refused] == [(str(tmp_path / "sub"), "not_a_file")]


def test_truncated_pdf_is_repaired_page_by_page(tmp_path, report_pdf):
    """PyMuPDF rebuilds the page tree of a PDF cut in half: every page comes back, rendered, in
    the same units as the whole file (its text layer, in the lost half, is gone)."""
    data = report_pdf.read_bytes()
    path = tmp_path / "truncated.pdf"
    path.write_bytes(data[: len(data) // 2])
    rows = list(ingest_document(path, IngestConfig(ocr="never"), UnitsConfig()))
    whole = list(ingest_document(report_pdf, IngestConfig(ocr="never"), UnitsConfig()))
    assert [(r["error_code"], r["pages"]) for r in rows] == [(None, r["pages"]) for r in whole]
    assert all(len(r["images"]) == len(r["pages"]) and all(r["images"]) for r in rows)


def test_ligature_glyphs_are_spelled_out(tmp_path):
    """MuPDF's HTML layout sets "ff", "fi", "fl" as ligature glyphs; the text layer spells them
    out, so a model and the grounding filter read "staff", not "sta\ufb00"."""
    path = tmp_path / "ligatures.pdf"
    story = pymupdf.Story("<p>The staff filed the official fluid reports.</p>")
    writer = pymupdf.DocumentWriter(str(path))
    device = writer.begin_page(pymupdf.paper_rect("letter"))
    story.place(pymupdf.Rect(50, 50, 560, 740))
    story.draw(device)
    writer.end_page()
    writer.close()
    with pymupdf.open(path) as doc:
        raw = doc[0].get_text()
    assert "\ufb00" in raw or "\ufb01" in raw  # the layer really holds ligatures
    page = next(iter_pages(path, "d", IngestConfig(ocr="never")))
    assert "The staff filed the official fluid reports." in page.text
