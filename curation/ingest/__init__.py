"""Ingest: source files -> Page records -> Unit rows (or one error row per unusable document)."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path

from curation.config import IngestConfig, UnitsConfig
from curation.ingest.errors import IngestError, check_size
from curation.ingest.images import (
    IMAGE_SUFFIXES,
    document_id_for_folder,
    iter_folder_pages,
    iter_image_pages,
    page_files,
)
from curation.ingest.pagedup import mark_unit
from curation.ingest.pdf import iter_pdf_pages
from curation.ingest.remote import expand_uri, is_uri, staged
from curation.ingest.slides import OFFICE_SUFFIXES, iter_office_pages
from curation.schema import Page
from curation.seeding import content_id, file_sha256
from curation.units import document_units, error_row

READERS = {
    ".pdf": iter_pdf_pages,
    **dict.fromkeys(IMAGE_SUFFIXES, iter_image_pages),
    **dict.fromkeys(OFFICE_SUFFIXES, iter_office_pages),
}

__all__ = [
    "IngestError",
    "current_document_id",
    "document_id",
    "expand_inputs",
    "ingest_document",
    "iter_pages",
]


def is_page_folder(path: Path) -> bool:
    """A folder holding page images is one document (its images are its pages)."""
    return path.is_dir() and bool(page_files(path))


def expand_inputs(patterns: list[str]) -> list[Path | str]:
    """Files and page-image folders matched by the globs, sorted, each once; a URI pattern
    (`s3://bucket/*.pdf`) gives the files it matches as URI strings, and its page-image folders
    with a trailing slash (see `ingest.remote`).

    An image inside a matched page folder belongs to that folder's document, not to its own.
    """
    seen: dict[str, Path | str] = {}
    for pattern in patterns:
        if is_uri(pattern):
            for uri in expand_uri(pattern):
                seen.setdefault(uri, uri)
            continue
        for match in sorted(glob.glob(pattern, recursive=True)):
            path = Path(match)
            if path.is_file() or is_page_folder(path):
                seen.setdefault(str(path), path)
    folders = {path for path in seen.values() if isinstance(path, Path) and path.is_dir()}
    uri_folders = {path for path in seen.values() if isinstance(path, str) and path.endswith("/")}

    def inside_a_folder(path: Path | str) -> bool:
        if isinstance(path, str):
            return not path.endswith("/") and f"{path.rsplit('/', 1)[0]}/" in uri_folders
        return not path.is_dir() and path.parent in folders

    return [path for path in seen.values() if not inside_a_folder(path)]


def document_id(path: Path) -> str:
    """sha256 of the file's bytes (hex prefix); of the path when the file cannot be read."""
    if path.is_dir():
        return document_id_for_folder(path)
    try:
        return file_sha256(path)[:16]
    except OSError:
        return content_id("unreadable", path)


def current_document_id(path: Path | str, max_file_mb: float) -> str:
    """The doc_id `ingest_document` gives this input now (a remote one is copied to hash it)."""
    if is_uri(path):
        try:
            with staged(path, max_file_mb) as local:
                return document_id(local)
        except IngestError:
            return content_id("unreadable", path)
    return document_id(Path(path).resolve())


def iter_pages(path: Path, doc_id: str, cfg: IngestConfig) -> Iterator[Page]:
    """Pages of any supported source (a file or a folder of page images), one at a time."""
    if path.is_dir():
        yield from iter_folder_pages(path, doc_id, cfg)
        return
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        supported = ", ".join(sorted(READERS))
        raise IngestError(
            "unsupported_type", f"'{path.suffix}' files are not supported ({supported})"
        )
    check_size(path.stat().st_size, cfg.max_file_mb)
    yield from reader(path, doc_id, cfg)


def ingest_document(
    path: Path | str,
    ingest: IngestConfig,
    units: UnitsConfig,
    source: str | None = None,
    page_dups: dict[int, str] | None = None,
) -> Iterator[dict]:
    """Unit rows for one source file (a path, or a URI read through fsspec); a failure ends the
    document with an error row.

    `source` is the name recorded for the file (default: the path or URI as given).
    `page_dups`: its pages that repeat an earlier page of the run ({page: "doc_id:page"}, see
    `ingest.pagedup`), marked on the units; a unit of such pages only is `skipped`.
    """
    source = source or str(path)
    if is_uri(path):
        try:
            with staged(path, ingest.max_file_mb) as local:
                yield from ingest_document(local, ingest, units, source, page_dups)
        except IngestError as exc:
            yield error_row(content_id("unreadable", path), source, exc.code, exc.message, 0)
        return
    path = Path(path)
    doc_id = document_id(path)
    pages_read = 0
    ocr_images: dict[int, bytes] = {}  # pages rendered for OCR (ingest.ocr_dpi), until used

    def counted(pages: Iterator[Page]) -> Iterator[Page]:
        nonlocal pages_read
        for page in pages:
            pages_read += 1
            if page.ocr_image is not None:
                ocr_images[page.page] = page.ocr_image
            yield page

    try:
        for row in document_units(counted(iter_pages(path, doc_id, ingest)), units):
            yield mark_unit({**with_ocr_images(row, ocr_images), "source": source}, page_dups)
    except IngestError as exc:
        yield error_row(doc_id, source, exc.code, exc.message, pages_read)
    except Exception as exc:  # a bug or an unforeseen library error: still data, never a crash
        yield error_row(doc_id, source, "internal", f"{type(exc).__name__}: {exc}", pages_read)


def with_ocr_images(row: dict, ocr_images: dict[int, bytes]) -> dict:
    """The row with `ocr_images` (schema.OCR_UNIT_SCHEMA) when some of its pages were rendered
    for OCR; those of earlier pages are let go (units come in page order)."""
    if not row["pages"]:
        return row
    for page in [page for page in ocr_images if page < row["pages"][0]]:
        del ocr_images[page]
    images = [ocr_images.get(page) for page in row["pages"]]
    return {**row, "ocr_images": images} if any(images) else row
