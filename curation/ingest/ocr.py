"""OCR backends behind one interface: page image bytes in, text in reading order out."""

from __future__ import annotations

import io
import os
import statistics
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from curation.config import ConfigError, IngestConfig
from curation.ingest.errors import IngestError

WIDE_SHARE = 0.6  # a box at least this share of the text width spans the columns (titles)
MIN_COLUMN_SHARE = 0.25  # a text column is at least this share of the text width ...
MIN_FILL = 0.5  # ... and its median line at least this share of the column; else table cells


@dataclass(frozen=True)
class OCRLine:
    """One recognised text box: its text, confidence (0-1) and (x0, y0, x1, y1) in pixels."""

    text: str
    score: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class OCRResult:
    """A page's OCR: text in reading order, character-weighted mean confidence, and the lines."""

    text: str
    score: float | None
    lines: list[OCRLine]

    @classmethod
    def from_lines(cls, lines: list[OCRLine]) -> OCRResult:
        """Order the lines into text and weight each line's score by its number of characters."""
        chars = sum(len(line.text) for line in lines)
        score = sum(line.score * len(line.text) for line in lines) / chars if chars else None
        return cls(text=reading_order(lines), score=score, lines=lines)


class OCRBackend(ABC):
    """An OCR model loaded once and applied to one encoded page image at a time."""

    name: str

    @abstractmethod
    def recognize(self, image: bytes) -> OCRResult:
        """OCR one encoded PNG or JPEG image; IngestError('ocr_failed') when that is impossible."""


class RapidOCRBackend(OCRBackend):
    """PP-OCR detection + recognition as ONNX through rapidocr, with the models its wheel ships."""

    name = "rapidocr"

    def __init__(self, threads: int | None = None) -> None:
        """`threads`: onnxruntime's threads per model (None: its default, one per core)."""
        from rapidocr import RapidOCR

        # At "info" it logs each model path on first use, and at "warning" every blank page.
        # The 180-degree line classifier flips some upright lines (justified text with wide word
        # spacing, italics) and they come out as garbage: on the sample corpus it lowered the
        # similarity to the text layer from >= 0.99 to 0.76 on a page. Without it, upside-down
        # lines are not read.
        params: dict[str, object] = {"Global.log_level": "error", "Global.use_cls": False}
        if threads is not None:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
            params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
        self._engine = RapidOCR(params=params)

    def recognize(self, image: bytes) -> OCRResult:
        """OCR one encoded image with RapidOCR."""
        page = _decode_image(image)
        try:
            # A PIL image, not an array: RapidOCR takes arrays as BGR but PIL images as RGB.
            output = self._engine(page)
        except Exception as exc:  # e.g. ResizeImgError (with an empty message) on a 5 x 3000 image
            raise IngestError(
                "ocr_failed",
                f"RapidOCR failed on a {page.width}x{page.height} image: {type(exc).__name__}: {exc}",
            ) from exc
        # Every field is None when nothing is found; boxes are N x 4 corner points.
        if output.txts is None or output.boxes is None or output.scores is None:
            return OCRResult.from_lines([])
        return OCRResult.from_lines(_lines(output.txts, output.scores, output.boxes))


class PaddleOCRBackend(OCRBackend):
    """PaddleOCR 3.x (extra `paddle`) on local det/rec model folders, on GPU when paddle has one."""

    name = "paddleocr"

    def __init__(self, model_dir: str | Path | None) -> None:
        det_dir, rec_dir = _paddle_model_dirs(model_dir)
        # Offline, PaddleX would otherwise probe its model hosters at import time.
        os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
        try:
            import paddle
            from paddleocr import PaddleOCR
        except ImportError as exc:
            raise ConfigError(
                f"ingest.ocr_backend 'paddleocr' needs PaddleOCR: pip install 'curation[paddle]' "
                f"({exc})"
            ) from exc
        self._engine = PaddleOCR(
            text_detection_model_name=det_dir.name,
            text_detection_model_dir=str(det_dir),
            text_recognition_model_name=rec_dir.name,
            text_recognition_model_dir=str(rec_dir),
            # These would need further models, which are not in model_dir.
            use_doc_orientation_classify=False,
            use_doc_unwarping=False,
            use_textline_orientation=False,
            device="gpu:0" if paddle.device.cuda.device_count() > 0 else "cpu",
        )

    def recognize(self, image: bytes) -> OCRResult:
        """OCR one encoded image with PaddleOCR."""
        bgr = np.ascontiguousarray(np.asarray(_decode_image(image))[:, :, ::-1])  # PaddleX: BGR
        try:
            (page,) = self._engine.predict(bgr)
        except Exception as exc:
            raise IngestError(
                "ocr_failed", f"PaddleOCR failed: {type(exc).__name__}: {exc}"
            ) from exc
        return OCRResult.from_lines(
            _lines(page["rec_texts"], page["rec_scores"], page["rec_polys"])
        )


def build_ocr_backend(cfg: IngestConfig) -> OCRBackend:
    """The backend named by cfg.ocr_backend."""
    if cfg.ocr_backend == "paddleocr":
        return PaddleOCRBackend(cfg.ocr_model_dir)
    return RapidOCRBackend()


def reading_order(lines: list[OCRLine]) -> str:
    """OCR lines as text: top to bottom, columns left to right.

    Boxes at least WIDE_SHARE of the text width (titles, full-width lines) are rows of their
    own; they cut the page into horizontal bands, so a title above the columns comes first.
    Within a band, vertical gutters (x ranges covered by no box) separate columns, read one
    after the other left to right, if every column looks like text: more than one line, at
    least MIN_COLUMN_SHARE of the text width, median line at least MIN_FILL of the column.
    Otherwise (table cells, label-value pairs) the band is read by rows. Within a column,
    boxes whose vertical centre lies within the first box of a row join that row, left to
    right, joined by a space; rows are joined by newlines. A narrow box that crosses the
    gutter (a centred page number in the same band) joins the columns into one.
    """
    return "\n".join(" ".join(line.text for line in row) for row in ordered_rows(lines))


def ordered_rows(lines: list[OCRLine]) -> list[list[OCRLine]]:
    """The lines grouped into rows in reading order (see `reading_order`)."""
    if not lines:
        return []
    width = max(line.box[2] for line in lines) - min(line.box[0] for line in lines)
    rows: list[list[OCRLine]] = []
    band: list[OCRLine] = []
    for line in sorted(lines, key=_centre_y):
        if line.box[2] - line.box[0] >= WIDE_SHARE * width:
            rows += [row for column in _columns(band, width) for row in _rows(column)]
            rows.append([line])
            band = []
        else:
            band.append(line)
    rows += [row for column in _columns(band, width) for row in _rows(column)]
    return rows


def _decode_image(image: bytes) -> Image.Image:
    """Encoded image bytes -> an RGB image (transparency over white); IngestError when unreadable."""
    try:
        with Image.open(io.BytesIO(image)) as decoded:
            decoded.load()
            if decoded.mode in ("RGB", "L"):
                return decoded.convert("RGB")
            white = Image.new("RGBA", decoded.size, "white")
            return Image.alpha_composite(white, decoded.convert("RGBA")).convert("RGB")
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, ... on broken input
        raise IngestError(
            "ocr_failed", f"cannot decode the image ({len(image)} bytes): {exc}"
        ) from exc


def _lines(
    texts: Iterable[str], scores: Iterable[float], polygons: Iterable[Sequence[Sequence[float]]]
) -> list[OCRLine]:
    """OCRLines from parallel texts, scores and corner-point polygons (axis-aligned boxes)."""
    lines = []
    for text, score, polygon in zip(texts, scores, polygons, strict=True):
        xs = [float(point[0]) for point in polygon]
        ys = [float(point[1]) for point in polygon]
        lines.append(OCRLine(str(text), float(score), (min(xs), min(ys), max(xs), max(ys))))
    return lines


def _centre_y(line: OCRLine) -> float:
    return (line.box[1] + line.box[3]) / 2


def _columns(band: list[OCRLine], width: float) -> list[list[OCRLine]]:
    """The band's boxes split at vertical gutters, left to right; one column unless all are text."""
    columns: list[list[OCRLine]] = []
    right_edge = float("-inf")
    for line in sorted(band, key=lambda line: line.box[0]):
        if line.box[0] > right_edge:  # no box seen so far reaches this one: a gutter
            columns.append([])
        columns[-1].append(line)
        right_edge = max(right_edge, line.box[2])
    if all(_is_text_column(column, width) for column in columns):
        return columns
    return [band]


def _is_text_column(column: list[OCRLine], width: float) -> bool:
    """Several lines, wide enough and filled by them: table cells are narrow or leave it empty."""
    span = max(line.box[2] for line in column) - min(line.box[0] for line in column)
    median_width = statistics.median(line.box[2] - line.box[0] for line in column)
    return len(column) > 1 and span >= MIN_COLUMN_SHARE * width and median_width >= MIN_FILL * span


def _rows(column: list[OCRLine]) -> list[list[OCRLine]]:
    """Boxes grouped into rows (centre within the row's first box), top to bottom, left to right."""
    rows: list[list[OCRLine]] = []
    for line in sorted(column, key=_centre_y):
        if rows and _centre_y(line) <= rows[-1][0].box[3]:
            rows[-1].append(line)
        else:
            rows.append([line])
    return [sorted(row, key=lambda line: line.box[0]) for row in rows]


def _paddle_model_dirs(model_dir: str | Path | None) -> tuple[Path, Path]:
    """The detection and recognition model folders (named like PP-OCRv5_server_det) in model_dir."""
    if model_dir is None:
        raise ConfigError(
            "ingest.ocr_model_dir is required for ocr_backend 'paddleocr': without local models "
            "PaddleOCR would download them, and nothing is downloaded at run time"
        )
    root = Path(model_dir)
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    det = [p for p in folders if p.name.endswith("_det")]
    rec = [p for p in folders if p.name.endswith("_rec")]
    if len(det) != 1 or len(rec) != 1:
        raise ConfigError(
            f"ingest.ocr_model_dir {str(root)!r} must hold exactly one detection model folder "
            f"(*_det, e.g. PP-OCRv5_server_det) and one recognition model folder (*_rec); "
            f"found {[p.name for p in folders]}"
        )
    return det[0], rec[0]
