"""Units: the pages of one document grouped into what an LLM reads together, by layout —
windows of consecutive pages (Docmatix), single pages, or the whole document."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from itertools import chain, pairwise

from curation.config import UnitsConfig
from curation.files import path_text
from curation.schema import Page, Unit
from curation.seeding import weighted_pick


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


def document_parts(chars: list[int], max_pages: int, max_chars: int) -> list[tuple[int, int]]:
    """[start, stop) ranges splitting a document (its pages' text lengths) into the fewest
    even parts of at most `max_pages` pages whose text, on average, fits `max_chars`."""
    n = len(chars)
    parts = min(n, max(math.ceil(n / max_pages), math.ceil(sum(chars) / max_chars), 1))
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return list(pairwise(bounds))


def unit_id(doc_id: str, start: int, stop: int) -> str:
    """`doc_id:first-last`, pages 0-based and inclusive."""
    return f"{doc_id}:{start}-{stop - 1}"


def document_layout(doc_id: str, cfg: UnitsConfig) -> str:
    """The layout of one document: the recipe's, or one drawn by its weights from the
    document's content id (the same on every run, so resume stays exact)."""
    if isinstance(cfg.layout, str):
        return cfg.layout
    # In name order: how the recipe orders its keys must not change the draw (nor its hash).
    choices = [(name, weight) for name, weight in sorted(cfg.layout.items()) if weight > 0]
    return weighted_pick(choices, "layout", doc_id)


def document_units(pages: Iterable[Page], cfg: UnitsConfig) -> Iterator[dict]:
    """A document's pages (arriving in order) as Unit rows, in the document's layout. Windows
    and single pages stream (one window held); a `document` unit holds the whole document,
    as its split depends on every page's text length."""
    pages = iter(pages)
    first = next(pages, None)
    if first is None:
        return
    layout = document_layout(first.doc_id, cfg)
    if layout == "document":
        held = [first, *pages]
        ranges = document_parts([len(p.text) for p in held], cfg.max_pages_per_unit, cfg.max_chars)
        for start, stop in ranges:
            yield unit_row(held[start:stop], len(ranges), layout, first.text)
        return
    size, overlap = (1, 0) if layout == "page" else (cfg.pages_per_unit, cfg.overlap)
    windows = unit_windows(first.n_pages, size, overlap)
    next_window = 0
    held_pages: dict[int, Page] = {}
    for page in chain([first], pages):
        held_pages[page.page] = page
        while next_window < len(windows) and page.page == windows[next_window][1] - 1:
            start, stop = windows[next_window]
            window = [held_pages[i] for i in range(start, stop)]
            yield unit_row(window, len(windows), layout, first.text)
            next_window += 1
            keep_from = windows[next_window][0] if next_window < len(windows) else stop
            held_pages = {i: p for i, p in held_pages.items() if i >= keep_from}


# How much of the document's first page a unit carries: its title and owner come first.
TITLE_CHARS = 2000


def unit_row(
    pages: list[Page], doc_units: int, layout: str = "window", title_text: str = ""
) -> dict:
    """A Unit row (schema.UNIT_SCHEMA) from consecutive pages of one document; `title_text`
    is the document's first page's text (its start is kept)."""
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
        layout=layout,
        page_dups=[None] * len(pages),
        title_text=(title_text or "")[:TITLE_CHARS],
    ).row()


def error_row(doc_id: str, source: str, code: str, message: str, pages_read: int = 0) -> dict:
    """A Unit row that stands for a document (or the rest of one) that could not be ingested.
    The message may name a file (or quote a library that does): shown by `path_text`'s rule."""
    return Unit(
        unit_id=f"{doc_id}:error",
        doc_id=doc_id,
        source=source,
        kind="document",
        doc_pages=pages_read,
        doc_units=0,
        error_code=code,
        error=path_text(message),
    ).row()
