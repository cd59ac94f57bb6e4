"""Is a page's text layer usable, or should the page be OCR'd? And is there any text at all?"""

from __future__ import annotations

import re

from curation.config import IngestConfig

LAYER, OCR, NONE, PENDING_OCR = "layer", "ocr", "none", "pending_ocr"
OCR_FAILED = "ocr_failed"  # OCR was needed but the backend could not read the image
# U+FFFD and the private-use area: what a font without a usable ToUnicode map extracts as.
BAD_CHARS = re.compile("[\ufffd\ue000-\uf8ff]")
# Why a unit gets no LLM call when none of its pages holds text (schema `skipped`, before ':').
NO_TEXT = "no_text"


def bad_char_share(text: str) -> float:
    """Share of U+FFFD replacement and private-use characters (signs of a broken font mapping)
    among the non-space characters."""
    visible = sum(map(len, text.split()))  # str.split() splits where str.isspace()
    if not visible:
        return 0.0
    return len(BAD_CHARS.findall(text)) / visible


def text_problem(text: str, cfg: IngestConfig, image_coverage: float = 0.0) -> str | None:
    """Why the text layer is unusable (missing, garbled, or a scan), or None when it is fine."""
    stripped = text.strip()
    if len(stripped) < cfg.ocr_min_chars:
        return f"text layer has {len(stripped)} chars (< {cfg.ocr_min_chars})"
    share = bad_char_share(stripped)
    if share > cfg.ocr_max_bad_char_share:
        return f"{share:.0%} of the text is replacement or private-use characters"
    if image_coverage >= cfg.ocr_image_coverage:
        return f"an image covers {image_coverage:.0%} of the page"
    return None


def choose_text_source(text: str, cfg: IngestConfig, image_coverage: float = 0.0) -> str:
    """layer, pending_ocr (OCR will fill the text), or none (no usable text and OCR is off)."""
    if cfg.ocr == "always":
        return PENDING_OCR
    problem = text_problem(text, cfg, image_coverage)
    if problem is None:
        return LAYER
    if cfg.ocr == "auto":
        return PENDING_OCR
    return LAYER if text.strip() else NONE


def without_ocr(text: str) -> str:
    """The source of a page OCR has nothing to read on (it found no text, or the page is
    blank): its text layer when it has one, else none."""
    return LAYER if text.strip() else NONE


def mark_textless(row: dict) -> dict:
    """A Unit row with `skipped` (NO_TEXT) when none of its pages holds text and none waits
    for OCR: a prompt over empty text gets questions about nothing ("What is the purpose of
    the article?"). For runs whose model reads text only (generate.images off)."""
    if row.get("error_code") is not None or row.get("skipped") or not row["pages"]:
        return row
    if PENDING_OCR in row["text_sources"] or any(text.strip() for text in row["texts"]):
        return row
    return {**row, "skipped": f"{NO_TEXT}: no page holds text (blank, or OCR found none)"}
