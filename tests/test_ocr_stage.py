"""The OCR stage on Unit rows, with the real RapidOCR backend."""

import io

import pyarrow as pa
import pymupdf
import pytest
from conftest import blank_pdf
from PIL import Image

import curation.ingest.ocr_stage as ocr_stage_module
from curation.config import IngestConfig, Recipe, UnitsConfig
from curation.ingest import expand_inputs, ingest_document
from curation.ingest.ocr import OCRBackend, OCRResult
from curation.ingest.ocr_stage import OCRStage
from curation.ingest.quality import mark_textless
from curation.ingest.slides import NOTES_HEADING
from curation.schema import OCR_UNIT_SCHEMA, UNIT_SCHEMA, wants_reply
from curation.workers import OCRActor, ingest_batch


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
    found = expand_inputs([str(tmp_path / "*"), str(pages / "*.png")]).files
    assert found == [tmp_path / "report.pdf", pages]


SMALL_PRINT = "Reservoir levels recovered quickly after the spring floods"


def small_print_pdf(path) -> object:
    """A page whose 5 pt line is a few pixels high at 40 dpi but easy to read at 200 dpi."""
    doc = pymupdf.open()
    page = doc.new_page(width=300, height=60)
    page.insert_text((10, 30), SMALL_PRINT, fontsize=5)
    doc.save(path)
    doc.close()
    return path


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


class Recording(OCRBackend):
    """A real backend, noting the size of every image it reads."""

    name = "recording"

    def __init__(self, backend: OCRBackend) -> None:
        self.backend = backend
        self.sizes: list[tuple[int, int]] = []

    def recognize(self, image: bytes) -> OCRResult:
        self.sizes.append(png_size(image))
        return self.backend.recognize(image)


def test_ocr_reads_a_render_at_ocr_dpi_and_the_page_image_stays_at_dpi(stage, tmp_path):
    pdf = small_print_pdf(tmp_path / "small.pdf")
    batch = pa.table({"path": [str(pdf)], "source": [str(pdf)], "page_dups": [None]})
    coarse = IngestConfig(dpi=40, ocr="always")
    sharp = coarse.model_copy(update={"ocr_dpi": 200})
    [plain] = list(ingest_batch(batch, coarse, UnitsConfig(), to_ocr=True))
    [table] = list(ingest_batch(batch, sharp, UnitsConfig(), to_ocr=True))
    assert table.schema.equals(OCR_UNIT_SCHEMA)
    [unit] = table.to_pylist()
    # The page image is the 40 dpi render either way; OCR gets a 200 dpi one of its own.
    assert unit["images"] == plain.to_pylist()[0]["images"]
    assert png_size(unit["images"][0]) == (167, 34)  # 300 x 60 pt at 40 dpi, rounded up
    assert png_size(unit["ocr_images"][0]) == (834, 167)  # at 200 dpi
    assert plain.to_pylist()[0]["ocr_images"] is None
    backend = Recording(stage.backend)  # RapidOCR
    [row] = OCRStage(sharp, backend=backend)([unit])
    assert backend.sizes == [(834, 167)]  # OCR read the 200 dpi render
    assert "ocr_images" not in row  # dropped by the OCR stage, never journaled
    assert pa.Table.from_pylist([row], schema=UNIT_SCHEMA).num_rows == 1
    assert row["text_sources"] == ["ocr"] and row["images"] == unit["images"]
    found = set(row["texts"][0].lower().split())
    assert found >= {"reservoir", "levels", "recovered", "quickly", "spring", "floods"}
    OCRStage(coarse, backend=backend)(plain.to_pylist())
    assert backend.sizes[-1] == (167, 34)  # without ocr_dpi: the page image, as before


def test_ocr_dpi_renders_only_pages_that_need_ocr_and_not_at_dpi(tmp_path, report_pdf):
    layer = next(ingest_document(report_pdf, IngestConfig(ocr_dpi=300), UnitsConfig()))
    assert "ocr_images" not in layer  # a good text layer: nothing to OCR, nothing rendered
    same = next(ingest_document(report_pdf, IngestConfig(ocr="always", ocr_dpi=150), UnitsConfig()))
    assert "ocr_images" not in same  # ocr_dpi == dpi: OCR reads the page image
    image = tmp_path / "scan.png"
    Image.new("RGB", (200, 100), "white").save(image)
    [row] = ingest_document(image, IngestConfig(ocr="always", ocr_dpi=300), UnitsConfig())
    assert "ocr_images" not in row  # an image input is OCR'd as it is


def test_ocr_dpi_at_its_default_leaves_the_recipe_hash_alone():
    base = Recipe(name="r", inputs=["*.pdf"])
    assert Recipe(name="r", inputs=["*.pdf"], ingest={"ocr_dpi": None}).content_hash() == (
        base.content_hash()
    )
    assert IngestConfig().ocr_dpi is None
    changed = Recipe(name="r", inputs=["*.pdf"], ingest={"ocr_dpi": 200})
    assert changed.content_hash() != base.content_hash()


# ---- the OCR actor, blank pages and units without text ------------------------------------------


def input_batch(path) -> pa.Table:
    """One input as the ingest stage receives it."""
    return pa.table({"path": [str(path)], "source": [str(path)], "page_dups": [None]})


def ingested(path, cfg: IngestConfig, needs_text: bool = True) -> pa.Table:
    """The input's Unit rows on their way to the OCR stage."""
    return pa.concat_tables(
        ingest_batch(input_batch(path), cfg, UnitsConfig(), to_ocr=True, needs_text=needs_text)
    )


def scan_png(tmp_path) -> object:
    """The small-print page as a 200 dpi scan: an image input, so OCR reads it."""
    with pymupdf.open(small_print_pdf(tmp_path / "small.pdf")) as doc:
        path = tmp_path / "scan.png"
        doc[0].get_pixmap(dpi=200).save(path)
    return path


@pytest.fixture
def loads(monkeypatch, stage) -> list[IngestConfig]:
    """Every OCR model load, each answered with the module's RapidOCR (already loaded)."""
    found: list[IngestConfig] = []

    def load(cfg: IngestConfig) -> OCRBackend:
        found.append(cfg)
        return stage.backend

    monkeypatch.setattr(ocr_stage_module, "build_ocr_backend", load)
    return found


def test_the_ocr_actor_loads_its_model_once_and_only_for_a_page_that_needs_it(
    loads, tmp_path, report_pdf
):
    actor = OCRActor(IngestConfig())
    layer = actor(ingested(report_pdf, IngestConfig())).to_pylist()
    assert {s for row in layer for s in row["text_sources"]} == {"layer"}
    assert loads == []  # a good text layer: no model
    scan = scan_png(tmp_path)
    for _ in range(2):  # two batches, one model
        [row] = actor(ingested(scan, IngestConfig())).to_pylist()
        assert row["text_sources"] == ["ocr"] and "reservoir" in row["texts"][0].lower()
    assert len(loads) == 1


def test_units_with_no_page_for_ocr_pass_the_actor_as_they_are(loads, report_pdf):
    """The OCR actor's pass-through (no page waits for OCR): the rows the full path gives,
    their image buffers the very ones that came in (nothing copied)."""
    units = ingested(report_pdf, IngestConfig())
    passed = OCRActor(IngestConfig(), needs_text=True)(units)
    assert passed.schema == UNIT_SCHEMA and loads == []
    slow = OCRStage(IngestConfig(), backend=None)(units.to_pylist())
    assert passed.to_pylist() == [mark_textless(unit) for unit in slow]
    came, went = (t.column("images").chunk(0).values.buffers()[-1] for t in (units, passed))
    assert went.address == came.address


def test_blank_pages_reach_neither_ocr_nor_the_model(loads, tmp_path):
    path = tmp_path / "blank.pdf"
    path.write_bytes(blank_pdf(200))
    cfg = IngestConfig(dpi=36)
    rows = OCRActor(cfg, needs_text=True)(ingested(path, cfg)).to_pylist()
    assert loads == []  # no page went to OCR
    assert len(rows) == 100  # 2 pages a unit
    assert {s for row in rows for s in row["text_sources"]} == {"none"}
    assert all(row["skipped"].startswith("no_text: ") for row in rows)
    assert not any(wants_reply(row) for row in rows)  # no generation request


def test_a_unit_ocr_finds_no_text_on_is_skipped_unless_the_model_reads_images(loads, tmp_path):
    doc = pymupdf.open()
    page = doc.new_page(width=300, height=200)
    page.draw_rect(pymupdf.Rect(40, 40, 260, 160), color=(0, 0, 0), fill=(0.3, 0.3, 0.3))
    doc.save(tmp_path / "box.pdf")
    doc.close()
    cfg = IngestConfig(dpi=72)
    units = ingested(tmp_path / "box.pdf", cfg)
    assert units.to_pylist()[0]["text_sources"] == ["pending_ocr"]  # ink, no text layer
    [row] = OCRActor(cfg, needs_text=True)(units).to_pylist()
    assert len(loads) == 1 and row["text_sources"] == ["none"]  # OCR read it: nothing
    assert row["skipped"].startswith("no_text: ") and not wants_reply(row)
    # generate.images on: the model sees the page, so the unit is asked about it.
    [row] = OCRActor(cfg)(ingested(tmp_path / "box.pdf", cfg, needs_text=False)).to_pylist()
    assert row["skipped"] is None and wants_reply(row)
