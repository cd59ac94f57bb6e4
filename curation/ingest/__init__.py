"""Ingest: source files -> Page records -> Unit rows (or one error row per unusable document)."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from curation.config import IngestConfig, UnitsConfig
from curation.files import path_problem, path_text
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
from curation.ingest.remote import GLOB_CHARS, expand_uri, is_uri, staged
from curation.ingest.slides import OFFICE_SUFFIXES, iter_office_pages
from curation.schema import InputError, Page
from curation.seeding import content_id, file_sha256
from curation.units import document_units, error_row

READERS = {
    ".pdf": iter_pdf_pages,
    **dict.fromkeys(IMAGE_SUFFIXES, iter_image_pages),
    **dict.fromkeys(OFFICE_SUFFIXES, iter_office_pages),
}

__all__ = [
    "IngestError",
    "Inputs",
    "current_document_id",
    "document_id",
    "expand_inputs",
    "ingest_document",
    "iter_pages",
]


# A matched folder that is no document; forgiven when other matches lie inside it (`dir/**`).
FOLDER_WITHOUT_PAGES = (
    "not_a_file",
    "a folder without page images: name the files in it with a pattern (folder/*.pdf)",
)


@dataclass
class Inputs:
    """What the input patterns name: the documents to read (paths and URIs, in order), an error
    row for each name that cannot be one, and how many documents `--limit` left out."""

    files: list[Path | str]
    refused: list[InputError] = field(default_factory=list)
    cut_by_limit: int = 0

    def limited(self, limit: int | None) -> Inputs:
        """The first `limit` documents; the rest are counted as cut. Refusals are all kept:
        they cost nothing to record."""
        if not limit or limit >= len(self.files):
            return self
        return Inputs(self.files[:limit], self.refused, len(self.files) - limit)


def refusal(path: Path) -> tuple[str, str] | None:
    """Why a local path cannot be a document, as (code, message); None for a regular file or a
    folder of page images (a folder holding page images is one document, its images its pages).
    Nothing is opened: a FIFO or a device is only looked at."""
    problem = path_problem(path)
    if problem or not path.is_dir():
        return problem
    try:
        return None if page_files(path) else FOLDER_WITHOUT_PAGES
    except OSError as exc:
        return "unreadable", f"cannot list the folder: {exc.strerror or exc}"


def expand_inputs(patterns: list[str]) -> Inputs:
    """Files and page-image folders matched by the globs, sorted, each once; a URI pattern
    (`s3://bucket/*.pdf`) gives the files it matches as URI strings, and its page-image folders
    with a trailing slash (see `ingest.remote`).

    Every name a pattern gives is accounted for: what cannot be a document (a FIFO, a device, a
    folder without page images, a name without glob characters that names nothing) is refused
    with a code. An image inside a matched page folder belongs to that folder's document.
    """
    found: dict[str, Path | str] = {}
    refused: dict[str, tuple[str, str]] = {}
    matched: list[Path] = []
    for pattern in patterns:
        if is_uri(pattern):
            uris, bad = expand_uri(pattern)
            for uri in uris:
                found.setdefault(uri, uri)
            for uri, code, message in bad:
                refused.setdefault(uri, (code, message))
            continue
        matches = sorted(glob.glob(pattern, recursive=True))
        if not matches and not GLOB_CHARS.search(pattern):
            matches = [pattern]  # named, and not there: refused as `missing`
        for match in matches:
            matched.append(Path(match))
            why = refusal(Path(match))
            if why is None:
                found.setdefault(match, Path(match))
            else:
                refused.setdefault(match, why)
    holders = {parent for path in matched for parent in path.parents}
    errors = [
        InputError(content_id("unreadable", name), path_text(name), "ingest", *why)
        for name, why in refused.items()
        if not (why == FOLDER_WITHOUT_PAGES and Path(name) in holders)
    ]
    folders = {path for path in found.values() if isinstance(path, Path) and path.is_dir()}
    uri_folders = {path for path in found.values() if isinstance(path, str) and path.endswith("/")}
    return Inputs(
        [path for path in found.values() if not is_page(path, folders, uri_folders)], errors
    )


def is_page(path: Path | str, folders: set[Path], uri_folders: set[str]) -> bool:
    """An image directly inside a found page-image folder: a page of that folder's document."""
    if isinstance(path, str):
        inside = f"{path.rsplit('/', 1)[0]}/" in uri_folders
    else:
        inside = path.parent in folders and not path.is_dir()
    return inside and PurePosixPath(path).suffix.lower() in IMAGE_SUFFIXES


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
    source = source or path_text(path)
    if is_uri(path):
        try:
            with staged(path, ingest.max_file_mb) as local:
                yield from ingest_document(local, ingest, units, source, page_dups)
        except IngestError as exc:
            yield error_row(content_id("unreadable", path), source, exc.code, exc.message, 0)
        return
    path = Path(path)
    problem = path_problem(path)
    if problem:  # never opened: a FIFO would wait for a writer, /dev/zero would never end
        yield error_row(content_id("unreadable", path), source, *problem, 0)
        return
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
