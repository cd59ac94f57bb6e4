"""Units: consecutive pages of one document grouped into the windows an LLM reads together."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from curation.config import UnitsConfig
from curation.schema import Page, Unit


def unit_windows(n_pages: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """[start, stop) page ranges covering n_pages; the last window ends at the last page."""
    stride = size - overlap
    windows = []
    for start in range(0, n_pages, stride):
        stop = min(start + size, n_pages)
        windows.append((start, stop))
        if stop == n_pages:
            break
    return windows


def unit_id(doc_id: str, start: int, stop: int) -> str:
    """`doc_id:first-last`, pages 0-based and inclusive."""
    return f"{doc_id}:{start}-{stop - 1}"


def window_pages(pages: Iterable[Page], cfg: UnitsConfig) -> Iterator[dict]:
    """Group a document's pages (arriving in order) into Unit rows, holding only one window."""
    windows: list[tuple[int, int]] = []
    next_window = 0
    held: dict[int, Page] = {}
    for page in pages:
        if not windows:
            windows = unit_windows(page.n_pages, cfg.pages_per_unit, cfg.overlap)
        held[page.page] = page
        while next_window < len(windows) and page.page == windows[next_window][1] - 1:
            start, stop = windows[next_window]
            yield unit_row([held[i] for i in range(start, stop)], len(windows))
            next_window += 1
            keep_from = windows[next_window][0] if next_window < len(windows) else stop
            held = {i: p for i, p in held.items() if i >= keep_from}


def unit_row(pages: list[Page], doc_units: int) -> dict:
    """A Unit row (schema.UNIT_SCHEMA) from consecutive pages of one document."""
    first = pages[0]
    return Unit(
        unit_id=unit_id(first.doc_id, first.page, pages[-1].page + 1),
        doc_id=first.doc_id,
        source=first.source,
        kind=first.kind,
        doc_pages=first.n_pages,
        doc_units=doc_units,
        pages=[p.page for p in pages],
        texts=[p.text for p in pages],
        text_sources=[p.text_source for p in pages],
        ocr_scores=[p.ocr_score for p in pages],
        images=[p.image for p in pages],
    ).row()


def error_row(doc_id: str, source: str, code: str, message: str, pages_read: int = 0) -> dict:
    """A Unit row that stands for a document (or the rest of one) that could not be ingested."""
    return Unit(
        unit_id=f"{doc_id}:error",
        doc_id=doc_id,
        source=source,
        kind="document",
        doc_pages=pages_read,
        doc_units=0,
        error_code=code,
        error=message,
    ).row()
