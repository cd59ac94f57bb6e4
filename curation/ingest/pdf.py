"""PDF pages through PyMuPDF: the text layer in reading order and a rendered page image."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pymupdf
from PIL import Image

from curation.config import IngestConfig
from curation.files import name_is_text, path_text
from curation.ingest.errors import IngestError
from curation.ingest.quality import PENDING_OCR, choose_text_source, without_ocr
from curation.ingest.render import fit_scale, is_blank
from curation.schema import Page

PDF_MAGIC = b"%PDF-"
HEADER_WINDOW = 1024  # the PDF spec lets the header start anywhere in the first 1,024 bytes

pymupdf.TOOLS.mupdf_display_errors(False)  # failures are reported as IngestError rows instead


def open_pdf(path: Path) -> pymupdf.Document:
    """Open a PDF, turning every way it can be unusable into an IngestError with a clear code."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(HEADER_WINDOW)
    except OSError as exc:
        raise IngestError("unreadable", f"cannot read the file: {exc.strerror or exc}") from exc
    if size == 0:
        raise IngestError("empty", "the file is empty (0 bytes)")
    if PDF_MAGIC not in head:
        raise IngestError(
            "not_pdf",
            f"no PDF header in the first {HEADER_WINDOW} bytes (starts with {head[:12]!r})",
        )
    try:
        if name_is_text(path):
            doc = pymupdf.open(path, filetype="pdf")
        else:  # MuPDF cannot take this name: the file is read here, by its real name
            doc = pymupdf.open(stream=path.read_bytes(), filetype="pdf")
    except Exception as exc:
        raise IngestError("corrupt", f"PyMuPDF cannot open it: {exc}") from exc
    if doc.needs_pass:
        doc.close()
        raise IngestError("encrypted", "the PDF is encrypted and needs a password to open")
    if doc.page_count == 0:
        repaired = doc.is_repaired
        doc.close()
        if repaired:
            raise IngestError("corrupt", "the PDF is damaged: no page survived PyMuPDF's repair")
        raise IngestError("no_pages", "the PDF has no pages")
    return doc


def page_text(page: pymupdf.Page, textpage: pymupdf.TextPage | None = None) -> str:
    """The page's text layer, text blocks in reading order (top to bottom, left to right).

    Ligature glyphs are spelled out ("ﬀ" -> "ff"): a model, the filters' word matching and the
    dedup all read "staff", not "staﬀ". `textpage`: one made by `text_page` (else one is made).
    """
    blocks = page.get_text("blocks", sort=True, textpage=textpage or text_page(page))
    parts = [block[4].strip() for block in blocks if block[6] == 0 and block[4].strip()]
    return "\n".join(parts)


def text_page(page: pymupdf.Page) -> pymupdf.TextPage:
    """The page's text and images, read once for `page_text` and `image_coverage`."""
    flags = pymupdf.TEXTFLAGS_BLOCKS & ~pymupdf.TEXT_PRESERVE_LIGATURES
    return page.get_textpage(flags=flags | pymupdf.TEXT_PRESERVE_IMAGES)


def render_page(page: pymupdf.Page, cfg: IngestConfig) -> tuple[bytes, int, int]:
    """Render at cfg.dpi, scaled down under max_image_side and max_pixels; (bytes, width, height)."""
    return encode_pixmap(page_pixmap(page, cfg), cfg)


def page_pixmap(page: pymupdf.Page, cfg: IngestConfig) -> pymupdf.Pixmap:
    """The page's pixels at cfg.dpi, scaled down under max_image_side and max_pixels."""
    zoom = cfg.dpi / 72.0
    zoom *= fit_scale(page.rect.width * zoom, page.rect.height * zoom, cfg)
    colorspace = pymupdf.csGRAY if cfg.grayscale else pymupdf.csRGB
    return page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), colorspace=colorspace, alpha=False)


def pixmap_is_blank(pix: pymupdf.Pixmap) -> bool:
    """No ink on the render (`render.is_blank`), read in place."""
    mode = "L" if pix.n == 1 else "RGB"
    size = (pix.width, pix.height)
    return is_blank(Image.frombuffer(mode, size, pix.samples_mv, "raw", mode, pix.stride, 1))


def encode_pixmap(pix: pymupdf.Pixmap, cfg: IngestConfig) -> tuple[bytes, int, int]:
    """The pixmap as cfg.image_format; (bytes, width, height)."""
    if cfg.image_format == "jpeg":
        data = pix.tobytes("jpeg", jpg_quality=cfg.jpeg_quality)
    else:
        data = pix.tobytes("png")
    return data, pix.width, pix.height


def ocr_render_dpi(cfg: IngestConfig) -> int | None:
    """The dpi of a render for OCR alone (ingest.ocr_dpi), or None: OCR reads the page image."""
    return None if cfg.ocr_dpi is None or cfg.ocr_dpi == cfg.dpi else cfg.ocr_dpi


def render_ocr_image(page: pymupdf.Page, cfg: IngestConfig) -> bytes:
    """The page as OCR reads it: RGB PNG at cfg.ocr_dpi (cfg.dpi when None), under max_pixels
    only (max_image_side, grayscale and the image format are for the page image)."""
    settings = {"max_image_side": 20000, "grayscale": False, "image_format": "png"}
    return render_page(page, cfg.model_copy(update={"dpi": cfg.ocr_dpi or cfg.dpi, **settings}))[0]


def image_coverage(page: pymupdf.Page, textpage: pymupdf.TextPage | None = None) -> float:
    """The share of the page covered by its largest image (a scan is one page-sized image).
    `textpage`: one made by `text_page` (else one is made)."""
    area = abs(page.rect) or 1.0
    largest = 0.0
    for info in (textpage or text_page(page)).extractIMGINFO():
        box = pymupdf.Rect(info["bbox"]) & page.rect
        largest = max(largest, abs(box))
    return min(1.0, largest / area)


def detect_kind(doc: pymupdf.Document, sample: int = 5) -> str:
    """'slides' when most of the first pages are landscape (a deck exported to PDF), else 'document'."""
    pages = [doc[i] for i in range(min(sample, doc.page_count))]
    landscape = sum(1 for p in pages if p.rect.width > 1.15 * p.rect.height)
    return "slides" if landscape * 2 > len(pages) else "document"


def iter_pdf_pages(
    path: Path, doc_id: str, cfg: IngestConfig, kind: str | None = None
) -> Iterator[Page]:
    """Yield the pages of a PDF one at a time (at most cfg.max_pages).

    A page whose text layer is missing or garbled gets text_source 'pending_ocr' (see quality.py),
    unless its render is blank (no ink: OCR would read nothing), which keeps its text layer.
    """
    doc = open_pdf(path)
    try:
        n_pages = doc.page_count if cfg.max_pages is None else min(doc.page_count, cfg.max_pages)
        kind = kind or detect_kind(doc)
        for index in range(n_pages):
            try:
                page = doc[index]
                textpage = text_page(page)
                text = page_text(page, textpage)
                source = choose_text_source(text, cfg, image_coverage(page, textpage))
                pix = page_pixmap(page, cfg)
                if source == PENDING_OCR and pixmap_is_blank(pix):
                    source = without_ocr(text)
                image, width, height = encode_pixmap(pix, cfg)
                ocr_image = (
                    render_ocr_image(page, cfg)
                    if source == PENDING_OCR and ocr_render_dpi(cfg) is not None
                    else None
                )
            except Exception as exc:
                raise IngestError("page_failed", f"page {index}: {exc}") from exc
            yield Page(
                doc_id=doc_id,
                source=path_text(path),
                kind=kind,
                page=index,
                n_pages=n_pages,
                text=text,
                text_source=source,
                image=image,
                width=width,
                height=height,
                ocr_image=ocr_image,
            )
        if doc.page_count > n_pages:
            raise IngestError(
                "page_cap",
                f"the document has {doc.page_count} pages; only the first {n_pages} were read"
                " (ingest.max_pages)",
            )
    finally:
        doc.close()
