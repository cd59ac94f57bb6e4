"""OCR: RapidOCR on real rendered pages, the reading order of OCR lines, PaddleOCR's set-up errors."""

from __future__ import annotations

import difflib
import importlib.util
import io
from pathlib import Path

import pymupdf
import pytest
from PIL import Image

from curation.config import ConfigError, IngestConfig
from curation.ingest.errors import IngestError
from curation.ingest.ocr import (
    OCRLine,
    OCRResult,
    PaddleOCRBackend,
    RapidOCRBackend,
    build_ocr_backend,
    reading_order,
)

TITLE = "Field notes on the orchards and the harbour of Wenlow"
LEFT = [
    "The orchard on the north slope holds four hundred apple trees planted in 1987.",
    "Pickers in the orchard fill about sixty crates of apples on a good autumn day.",
    "A late frost in April cost the orchard nearly a third of its blossom this year.",
    "Most orchard fruit is pressed into cider at the mill beside the old church.",
]
RIGHT = [
    "The harbour wall was rebuilt in granite after the great storm of 1953.",
    "Twelve fishing boats still land their catch in the harbour every morning.",
    "At low tide the harbour mouth is only two metres deep over the sand bar.",
    "A ferry leaves the harbour for the island at nine and returns at four.",
]


def normalise(text: str) -> str:
    return " ".join(text.split())


def similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, normalise(a), normalise(b)).ratio()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def render(page: pymupdf.Page) -> bytes:
    return page.get_pixmap(dpi=150).tobytes("png")


def line(text: str, x0: float, y0: float, x1: float, y1: float, score: float = 0.9) -> OCRLine:
    return OCRLine(text, score, (x0, y0, x1, y1))


@pytest.fixture(scope="module")
def rapidocr() -> RapidOCRBackend:
    return RapidOCRBackend()


def test_rapidocr_text_matches_the_text_layer_of_a_rendered_page(
    rapidocr: RapidOCRBackend, report_pdf: Path
) -> None:
    with pymupdf.open(report_pdf) as doc:
        layer, image = doc[0].get_text(), render(doc[0])
    result = rapidocr.recognize(image)
    ratio = similarity(result.text, layer)
    print(
        f"RapidOCR vs text layer, page 1 at 150 dpi: similarity {ratio:.4f}, score {result.score}"
    )
    assert ratio >= 0.9
    assert result.score is not None and 0 < result.score <= 1
    assert result.lines and all(0 <= ocr_line.score <= 1 for ocr_line in result.lines)


def test_rapidocr_reads_a_two_column_page_column_by_column_after_the_title(
    rapidocr: RapidOCRBackend,
) -> None:
    with pymupdf.open() as doc:
        page = doc.new_page(width=612, height=792)
        boxes = [
            ((50, 50, 562, 90), TITLE, 15),
            ((50, 110, 296, 700), " ".join(LEFT), 11),
            ((316, 110, 562, 700), " ".join(RIGHT), 11),
        ]
        for rect, text, fontsize in boxes:
            assert page.insert_textbox(pymupdf.Rect(rect), text, fontsize=fontsize) >= 0  # it fits
        image = render(page)
    text = rapidocr.recognize(image).text
    print(text)
    title, body = text.split("\n", 1)
    assert similarity(title, TITLE) >= 0.9
    assert body.rindex("orchard") < body.index("harbour")  # all of the left column comes first
    assert similarity(text, " ".join([TITLE, *LEFT, *RIGHT])) >= 0.9


def test_transparent_png_is_read_over_white(rapidocr: RapidOCRBackend) -> None:
    with pymupdf.open() as doc:
        page = doc.new_page(width=300, height=60)
        page.insert_text((20, 35), "Harbour dues rose in March", fontsize=16)
        image = page.get_pixmap(dpi=150, alpha=True).tobytes("png")  # black on transparent
    assert Image.open(io.BytesIO(image)).mode == "RGBA"
    assert similarity(rapidocr.recognize(image).text, "Harbour dues rose in March") >= 0.9


def test_blank_image_gives_empty_text_and_no_score(rapidocr: RapidOCRBackend) -> None:
    result = rapidocr.recognize(png(Image.new("RGB", (600, 800), "white")))
    assert result == OCRResult(text="", score=None, lines=[])


@pytest.mark.parametrize(
    "image",
    [
        b"",
        b"this is not an image at all",
        png(Image.new("RGB", (200, 100), "white"))[:60],  # a truncated PNG
        png(Image.new("RGB", (5, 3000), "white")),  # decodes, but RapidOCR refuses the shape
    ],
    ids=["empty", "garbage", "truncated_png", "extreme_aspect_ratio"],
)
def test_unusable_image_raises_ocr_failed(rapidocr: RapidOCRBackend, image: bytes) -> None:
    with pytest.raises(IngestError) as info:
        rapidocr.recognize(image)
    assert info.value.code == "ocr_failed"
    assert info.value.message


def test_score_is_the_mean_line_confidence_weighted_by_characters() -> None:
    result = OCRResult.from_lines(
        [line("ab", 0, 0, 20, 10, 1.0), line("abcdef", 0, 20, 60, 30, 0.5)]
    )
    assert result.score == pytest.approx((2 * 1.0 + 6 * 0.5) / 8)
    assert result.text == "ab\nabcdef"


def test_reading_order_merges_boxes_on_one_row_left_to_right() -> None:
    lines = [
        line("world", 300, 10, 400, 30),
        line("next line", 100, 50, 250, 70),
        line("Hello", 100, 12, 200, 32),
    ]
    assert reading_order(lines) == "Hello world\nnext line"


def test_reading_order_reads_the_left_column_before_the_right_one() -> None:
    lines = [
        line(f"{side} {row}", x0, 100 + 40 * row, x0 + 380, 130 + 40 * row)
        for row in range(3)
        for side, x0 in (("right", 520), ("left", 100))
    ]
    expected = ["left 0", "left 1", "left 2", "right 0", "right 1", "right 2"]
    assert reading_order(lines).splitlines() == expected


def test_reading_order_puts_a_title_spanning_both_columns_first() -> None:
    lines = [
        line("left 0", 100, 100, 480, 130),
        line("right 0", 520, 100, 900, 130),
        line("left 1", 100, 140, 470, 170),
        line("right 1", 520, 140, 890, 170),
        line("Title across both columns", 150, 20, 850, 70),
    ]
    assert reading_order(lines).splitlines() == [
        "Title across both columns",
        "left 0",
        "left 1",
        "right 0",
        "right 1",
    ]


def test_reading_order_reads_a_table_by_rows() -> None:
    # A label column and a block of figures (page 2 of the sample report): not two text columns.
    lines = [line("Table 2. Five-year summary", 143, 530, 612, 563)]
    for row, label in enumerate(["Revenue ($m)", "Expenses ($m)"]):
        y = 570 + 36 * row
        lines.append(line(label, 150, y, 380, y + 30))
        lines += [
            line(f"{row}{col}.0", 716 + 82 * col, y, 798 + 82 * col, y + 30) for col in range(5)
        ]
    assert reading_order(lines).splitlines() == [
        "Table 2. Five-year summary",
        "Revenue ($m) 00.0 01.0 02.0 03.0 04.0",
        "Expenses ($m) 10.0 11.0 12.0 13.0 14.0",
    ]


def test_reading_order_of_no_lines_is_empty() -> None:
    assert reading_order([]) == ""


def test_build_ocr_backend_gives_rapidocr_by_default() -> None:
    assert isinstance(build_ocr_backend(IngestConfig()), RapidOCRBackend)


def test_paddleocr_without_a_model_dir_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="ocr_model_dir"):
        build_ocr_backend(IngestConfig(ocr_backend="paddleocr"))


def test_paddleocr_model_dir_without_det_and_rec_folders_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    with pytest.raises(ConfigError, match=r"_det.*_rec"):
        PaddleOCRBackend(tmp_path)
    with pytest.raises(ConfigError, match="must hold"):
        PaddleOCRBackend(tmp_path / "missing")


@pytest.mark.skipif(importlib.util.find_spec("paddleocr") is not None, reason="paddleocr installed")
def test_paddleocr_not_installed_names_the_extra(tmp_path: Path) -> None:
    for name in ("PP-OCRv5_server_det", "PP-OCRv5_server_rec"):
        (tmp_path / name).mkdir()
    with pytest.raises(ConfigError, match=r"pip install 'curation\[paddle\]'"):
        PaddleOCRBackend(tmp_path)
