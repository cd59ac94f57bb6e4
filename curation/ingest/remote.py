"""Inputs named by URI (`s3://bucket/decks/*.pdf`, `gs://...`, `https://...`): read with fsspec.

A remote file is copied to a private temporary folder on the worker that ingests it, read there
like a local file, and deleted; its rows keep the URI as their `source`. So a cluster needs no
shared path for its inputs, only credentials for the store (the usual environment variables of
s3fs, gcsfs...). Outputs stay on a local or shared path (`curation publish` ships them).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import fsspec

from curation.ingest.errors import IngestError, check_size

URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
GLOB_CHARS = re.compile(r"[*?\[]")


def is_uri(name: str | Path) -> bool:
    """True for `scheme://...` names; a Path never is one."""
    return isinstance(name, str) and bool(URI.match(name))


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem and the path inside it; a missing driver is named with its package."""
    try:
        return fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:  # e.g. "Install s3fs to access S3"
        raise ValueError(f"{uri}: {exc}") from exc


def expand_uri(pattern: str) -> list[str]:
    """The files a URI or URI glob names, as full URIs, sorted."""
    fs, path = filesystem(pattern)
    matches = fs.glob(path) if GLOB_CHARS.search(path) else [path]
    return sorted(fs.unstrip_protocol(m) for m in matches if fs.isfile(m))


@contextmanager
def staged(uri: str, max_file_mb: float) -> Iterator[Path]:
    """A local copy of a remote file for the duration of the block (same file name, so the
    reader is picked by its suffix). Size is checked before anything is copied."""
    try:
        fs, path = filesystem(uri)
        size = fs.size(path)
    except FileNotFoundError as exc:
        raise IngestError("unreadable", f"cannot read {uri}: not found") from exc
    except (OSError, ValueError) as exc:
        raise IngestError("unreadable", f"cannot read {uri}: {exc}") from exc
    check_size(size, max_file_mb)
    folder = Path(tempfile.mkdtemp(prefix="curation-input-"))
    try:
        local = folder / (PurePosixPath(path).name or "input")
        try:
            fs.get_file(path, str(local))
        except (OSError, ValueError) as exc:
            raise IngestError("unreadable", f"cannot copy {uri}: {exc}") from exc
        yield local
    finally:
        shutil.rmtree(folder, ignore_errors=True)
