"""Inputs named by URI (`s3://bucket/decks/*.pdf`, `gs://...`, `https://...`): read with fsspec.

A remote file is copied to a private temporary folder on the worker that ingests it, read there
like a local file, and deleted; its rows keep the URI as their `source`. A remote folder of page
images is one document, as a local one is: it is named with a trailing slash
(`s3://bucket/scans/report-17/`), and its images are copied together. So a cluster needs no
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
from curation.ingest.images import IMAGE_SUFFIXES

URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
COPY_CHUNK = 1 << 20
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


def page_images(fs: fsspec.AbstractFileSystem, folder: str) -> list[dict]:
    """fsspec entries (name, size) of the image files directly in a remote folder, hidden ones
    skipped; [] when it holds none or cannot be listed."""
    try:
        entries = fs.ls(folder.rstrip("/"), detail=True)
    except (OSError, ValueError):
        return []
    return [
        entry
        for entry in entries
        if entry.get("type") == "file"
        and PurePosixPath(entry["name"]).suffix.lower() in IMAGE_SUFFIXES
        and not PurePosixPath(entry["name"]).name.startswith(".")
    ]


def expand_uri(pattern: str) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The files and page-image folders (with a trailing slash) a URI or URI glob names, as
    full URIs, sorted; an image inside a matched folder belongs to that folder's document. And
    what it names that cannot be read, as (uri, code, message): a URI without glob characters
    that names nothing (`missing`), a matched folder without page images (`not_a_file`) unless
    other matches lie inside it (then it only holds them)."""
    fs, path = filesystem(pattern)
    matches = fs.glob(path) if GLOB_CHARS.search(path) else [path.rstrip("/")]
    files, folders, plain, refused = [], set(), [], []
    for match in matches:
        if fs.isfile(match):
            files.append(match)
        elif not fs.isdir(match):
            refused.append((fs.unstrip_protocol(match), "missing", "no such file or folder"))
        elif page_images(fs, match):
            folders.add(match.rstrip("/"))
        else:
            plain.append(match.rstrip("/"))
    holders = {str(parent) for match in matches for parent in PurePosixPath(match).parents}
    refused += [
        (fs.unstrip_protocol(m), "not_a_file", "a folder without page images")
        for m in plain
        if m not in holders
    ]
    found = [f"{fs.unstrip_protocol(m)}/" for m in folders]
    found += [fs.unstrip_protocol(m) for m in files if not is_page_of(PurePosixPath(m), folders)]
    return sorted(found), sorted(refused)


def is_page_of(path: PurePosixPath, folders: set[str]) -> bool:
    """An image directly inside one of the page-image folders is one of its pages."""
    return str(path.parent) in folders and path.suffix.lower() in IMAGE_SUFFIXES


def copy_capped(fs: fsspec.AbstractFileSystem, name: str, target: Path, max_file_mb: float) -> None:
    """Copy a remote file in chunks, refusing it ('too_large') once more than `max_file_mb`
    came: a store may not say how big a file is, or say it wrong."""
    limit = int(max_file_mb * 2**20)
    copied = 0
    with fs.open(name, "rb") as source, target.open("wb") as sink:
        while chunk := source.read(min(COPY_CHUNK, limit - copied + 1)):
            copied += len(chunk)
            if copied > limit:
                raise IngestError(
                    "too_large",
                    f"the file is over {max_file_mb:g} MB, counted while copying it "
                    f"(ingest.max_file_mb: {max_file_mb:g})",
                )
            sink.write(chunk)


@contextmanager
def staged(uri: str, max_file_mb: float) -> Iterator[Path]:
    """A local copy of a remote file (or page-image folder, named with a trailing slash) for
    the duration of the block, with the same name, so the reader is picked by its suffix. Each
    file's listed size is checked before anything is copied, and the bytes are counted while
    they are copied: a file of unknown (or understated) size stops at `max_file_mb` too."""
    try:
        fs, path = filesystem(uri)
        if uri.endswith("/"):
            files = page_images(fs, path)
            if not files:
                raise IngestError("no_pages", f"{uri} holds no PNG, JPEG, TIFF or WebP files")
        else:
            files = [{"name": path, "size": fs.size(path)}]
    except FileNotFoundError as exc:
        raise IngestError("unreadable", f"cannot read {uri}: not found") from exc
    except (OSError, ValueError) as exc:
        raise IngestError("unreadable", f"cannot read {uri}: {exc}") from exc
    for entry in files:
        check_size(entry["size"] or 0, max_file_mb)
    folder = Path(tempfile.mkdtemp(prefix="curation-input-"))
    try:
        local = folder / (PurePosixPath(path.rstrip("/")).name or "input")
        if uri.endswith("/"):
            local.mkdir()
        for entry in files:
            target = local / PurePosixPath(entry["name"]).name if uri.endswith("/") else local
            try:
                copy_capped(fs, entry["name"], target, max_file_mb)
            except (OSError, ValueError) as exc:
                raise IngestError("unreadable", f"cannot copy {uri}: {exc}") from exc
        yield local
    finally:
        shutil.rmtree(folder, ignore_errors=True)
