"""Slide decks (PPTX, ODP, PPT, ODG) through LibreOffice headless -> PDF -> pdf.py pages."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from pptx import Presentation
from pptx.slide import Slide

from curation.config import IngestConfig
from curation.files import path_text
from curation.ingest.errors import IngestError
from curation.ingest.pdf import iter_pdf_pages, open_pdf
from curation.schema import Page

# The part every archive of that type must hold; a zip without it is some other file.
ZIP_MAIN_PART = {".pptx": "[Content_Types].xml", ".odp": "content.xml", ".odg": "content.xml"}
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .ppt is an OLE2 compound file
NOTES_HEADING = "\n\nSpeaker notes: "
OFFICE_SUFFIXES = frozenset({*ZIP_MAIN_PART, ".ppt"})

MB = 1 << 20
# Office XML compresses 5-20x and media hardly at all; a big member inflating more than
# MAX_RATIO times is a zip bomb. Small members are exempt: a tiny XML part may compress 200x.
MAX_RATIO = 100
RATIO_MIN_BYTES = 10 * MB
STDERR_TAIL_CHARS = 600
# A zip member's local header: signature, version, flags, method, time, date, crc, sizes,
# name length, extra length; the member's data follows the name and the extra field.
LOCAL_HEADER = struct.Struct("<4s5H3L2H")
STORED, DEFLATED = zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED
INFLATE_CHUNK = MB  # compressed bytes read, and bytes inflated, at a time


def check_archive(path: Path, cfg: IngestConfig) -> None:
    """Refuse what is not an office file, or what unzips to too much (counted while inflating)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(len(OLE_MAGIC))
    except OSError as exc:
        raise IngestError("unreadable", f"cannot read the file: {exc.strerror or exc}") from exc
    if not head:
        raise IngestError("empty", "the file is empty (0 bytes)")
    suffix = path.suffix.lower()
    if suffix == ".ppt":
        if not head.startswith(OLE_MAGIC):
            raise IngestError("not_office", f"not a PowerPoint 97-2003 file (starts with {head!r})")
        return
    if not head.startswith(b"PK"):
        raise IngestError(
            "not_office", f"not a zip archive, as {suffix} must be (starts with {head!r})"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise IngestError("corrupt", f"the zip archive is damaged: {exc}") from exc
    if ZIP_MAIN_PART[suffix] not in {member.filename for member in members}:
        raise IngestError("not_office", f"a zip archive without {ZIP_MAIN_PART[suffix]}")
    check_inflation(path, members, cfg)


def check_inflation(path: Path, members: list[zipfile.ZipInfo], cfg: IngestConfig) -> None:
    """Raise 'zip_bomb' when the members inflate past max_unzipped_mb, or a big one more than
    MAX_RATIO times. The bytes are counted as each member really inflates (streamed, stopping
    past the limit), not taken from the sizes the archive declares, which a bomb can fake."""
    limit = int(cfg.max_unzipped_mb * MB)
    total = 0
    with path.open("rb") as fh:
        for member in members:
            size, packed = inflated_size(fh, member, limit - total)
            total += size
            if total > limit:
                raise IngestError(
                    "zip_bomb",
                    f"unzips to more than {total / MB:.0f} MB (counted up to {member.filename}), "
                    f"above max_unzipped_mb ({cfg.max_unzipped_mb:g})",
                )
            ratio = size / max(packed, 1)
            if size > RATIO_MIN_BYTES and ratio > MAX_RATIO:
                raise IngestError(
                    "zip_bomb",
                    f"{member.filename} inflates {ratio:.0f}x ({packed} bytes to "
                    f"{size / MB:.0f} MB; at most {MAX_RATIO}x is accepted)",
                )


def inflated_size(fh: BinaryIO, member: zipfile.ZipInfo, budget: int) -> tuple[int, int]:
    """(bytes a member inflates to, compressed bytes it takes), from its data in the archive as
    a reader inflates it; inflating stops once more than `budget` bytes came out."""
    fh.seek(member.header_offset)
    header = fh.read(LOCAL_HEADER.size)
    if len(header) < LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise IngestError("corrupt", f"the zip archive is damaged: no data for {member.filename}")
    fields = LOCAL_HEADER.unpack(header)
    method, name_length, extra_length = fields[3], fields[9], fields[10]
    if method != member.compress_type:
        raise IngestError(
            "corrupt", f"the zip archive is damaged: {member.filename} has two compression methods"
        )
    if method not in (STORED, DEFLATED):
        raise IngestError(
            "not_office",
            f"{member.filename} uses zip compression method {method}; office files use stored "
            "or deflate",
        )
    fh.seek(name_length + extra_length, os.SEEK_CUR)
    if method == STORED:  # as many bytes as it takes, within the file
        start = fh.tell()
        stored = min(member.compress_size, fh.seek(0, os.SEEK_END) - start)
        return stored, stored
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    inflated = read = 0
    pending = b""
    while not inflater.eof and inflated <= budget:
        if not pending:
            pending = fh.read(INFLATE_CHUNK)
            if not pending:
                break  # the file ends inside the stream: nothing more inflates
            read += len(pending)
        try:
            inflated += len(inflater.decompress(pending, INFLATE_CHUNK))
        except zlib.error as exc:
            raise IngestError(
                "corrupt", f"the zip archive is damaged: {member.filename}: {exc}"
            ) from exc
        pending = inflater.unconsumed_tail
    return inflated, read - len(pending) - len(inflater.unused_data)


def find_soffice() -> str:
    """The LibreOffice executable on PATH."""
    found = shutil.which("soffice") or shutil.which("libreoffice")
    if found is None:
        raise IngestError(
            "libreoffice_missing",
            "install LibreOffice (apt-get install libreoffice-impress, or brew install "
            "--cask libreoffice) and put soffice on PATH to ingest slide decks",
        )
    return found


def convert_to_pdf(path: Path, workdir: Path, cfg: IngestConfig) -> Path:
    """Convert with LibreOffice headless into workdir, with a user profile of its own."""
    outdir = workdir / "out"
    command = [
        find_soffice(),
        # A private profile: concurrent conversions (and a LibreOffice the user has open)
        # would otherwise share one profile lock and fail silently.
        f"-env:UserInstallation={(workdir / 'profile').as_uri()}",
        "--headless",
        "--norestore",
        "--nolockcheck",
        "--convert-to",
        "pdf",
        "--outdir",
        str(outdir),
        str(path.resolve()),
    ]
    with subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so a timeout kills soffice.bin too
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=cfg.convert_timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise IngestError(
                "convert_timeout",
                f"LibreOffice did not finish within convert_timeout_s ({cfg.convert_timeout_s:g} s)",
            ) from None
    # LibreOffice exits 0 even when it cannot load the file: the PDF is the only sure sign.
    pdf = next(outdir.glob("*.pdf"), None)
    if proc.returncode != 0 or pdf is None:
        tail = output.decode(errors="replace").strip()[-STDERR_TAIL_CHARS:]
        raise IngestError(
            "convert_failed", f"LibreOffice made no PDF (exit code {proc.returncode}): {tail}"
        )
    return pdf


def slide_title(slide: Slide) -> str:
    """The title placeholder's text on one line, or ''."""
    title = slide.shapes.title
    return " ".join(title.text_frame.text.split()) if title is not None else ""


def slide_notes(slide: Slide) -> str:
    """The speaker notes of a slide, or ''."""
    if not slide.has_notes_slide:
        return ""
    frame = slide.notes_slide.notes_text_frame
    return frame.text.replace("\v", "\n").strip() if frame is not None else ""


def pptx_extras(path: Path, n_pdf_pages: int) -> list[tuple[str, str]] | None:
    """(title, notes) per slide shown in the PDF, or None when they cannot be matched to its pages."""
    try:
        slides = Presentation(str(path)).slides
        # LibreOffice leaves hidden slides (show="0") out of the PDF.
        shown = [slide for slide in slides if slide.element.get("show") != "0"]
        extras = [(slide_title(slide), slide_notes(slide)) for slide in shown]
    except Exception:  # notes are a bonus: a deck python-pptx cannot read converts without them
        return None
    return extras if len(extras) == n_pdf_pages else None


def with_extras(text: str, title: str, notes: str) -> str:
    """The page text with the slide title in front (unless already there) and the notes after."""
    if title and title not in " ".join(text.split()):
        text = f"{title}\n{text}"
    if notes:
        text = f"{text}{NOTES_HEADING}{notes}"
    return text.strip()


def pdf_page_count(pdf: Path) -> int:
    """Pages in the converted PDF."""
    doc = open_pdf(pdf)
    try:
        return doc.page_count
    finally:
        doc.close()


def iter_office_pages(path: Path, doc_id: str, cfg: IngestConfig) -> Iterator[Page]:
    """Yield the slides of a deck one at a time, with the PPTX title and speaker notes in the text."""
    check_archive(path, cfg)
    with tempfile.TemporaryDirectory(prefix="curation-office-", ignore_cleanup_errors=True) as tmp:
        pdf = convert_to_pdf(path, Path(tmp), cfg)
        extras = pptx_extras(path, pdf_page_count(pdf)) if path.suffix.lower() == ".pptx" else None
        for page in iter_pdf_pages(pdf, doc_id, cfg, kind="slides"):
            text = with_extras(page.text, *extras[page.page]) if extras else page.text
            yield replace(page, source=path_text(path), text=text)
