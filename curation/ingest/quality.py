"""Is a page's text layer usable, or should the page be OCR'd?"""

from __future__ import annotations

import re

from curation.config import IngestConfig

LAYER, OCR, NONE, PENDING_OCR = "layer", "ocr", "none", "pending_ocr"
OCR_FAILED = "ocr_failed"  # OCR was needed but the backend could not read the image
# U+FFFD and the private-use area: what a font without a usable ToUnicode map extracts as.
BAD_CHARS = re.compile("[\ufffd\ue000-\uf8ff]")


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
