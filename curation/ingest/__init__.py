"""Ingest: source files -> Page records -> Unit rows (or one error row per unusable document)."""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Iterator
from pathlib import Path

from curation.config import IngestConfig, UnitsConfig
from curation.ingest.errors import IngestError
from curation.ingest.pdf import iter_pdf_pages
from curation.schema import Page
from curation.units import error_row, window_pages

READERS = {".pdf": iter_pdf_pages}

__all__ = ["IngestError", "document_id", "expand_inputs", "ingest_document", "iter_pages"]


def expand_inputs(patterns: list[str]) -> list[Path]:
    """Files matched by the glob patterns, in sorted order, each once."""
    seen: dict[str, Path] = {}
    for pattern in patterns:
        for match in sorted(glob.glob(pattern, recursive=True)):
            path = Path(match)
            if path.is_file():
                seen.setdefault(str(path), path)
    return list(seen.values())


def document_id(path: Path) -> str:
    """sha256 of the file's bytes (hex prefix); of the path when the file cannot be read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        digest.update(b"unreadable:" + str(path).encode())
    return digest.hexdigest()[:16]


def iter_pages(path: Path, doc_id: str, cfg: IngestConfig) -> Iterator[Page]:
    """Pages of any supported source file, one at a time."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        supported = ", ".join(sorted(READERS))
        raise IngestError(
            "unsupported_type", f"'{path.suffix}' files are not supported ({supported})"
        )
    yield from reader(path, doc_id, cfg)


def ingest_document(
    path: Path, ingest: IngestConfig, units: UnitsConfig, source: str | None = None
) -> Iterator[dict]:
    """Unit rows for one source file; a failure ends the document with an error row.

    `source` is the name recorded for the file (default: the path as given).
    """
    source = source or str(path)
    doc_id = document_id(path)
    pages_read = 0

    def counted(pages: Iterator[Page]) -> Iterator[Page]:
        nonlocal pages_read
        for page in pages:
            pages_read += 1
            yield page

    try:
        for row in window_pages(counted(iter_pages(path, doc_id, ingest)), units):
            yield {**row, "source": source}
    except IngestError as exc:
        yield error_row(doc_id, source, exc.code, exc.message, pages_read)
    except Exception as exc:  # a bug or an unforeseen library error: still data, never a crash
        yield error_row(doc_id, source, "internal", f"{type(exc).__name__}: {exc}", pages_read)
