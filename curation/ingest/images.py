"""Image files as documents: one page per image (per frame of a TIFF); a folder of page images."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from itertools import chain, islice
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from curation.config import IngestConfig
from curation.files import path_text
from curation.ingest.errors import IngestError
from curation.ingest.quality import NONE, PENDING_OCR
from curation.ingest.render import encode_image, is_blank
from curation.schema import Page
from curation.seeding import file_sha256

# Only these decoders ever run: Pillow's other plugins include EPS, which calls Ghostscript.
IMAGE_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"})
# An input may have this many times cfg.max_pixels before decoding; encode_image scales it down.
# Pillow itself refuses images above 2 * Image.MAX_IMAGE_PIXELS at open (also 'image_too_large').
DECODE_PIXEL_FACTOR = 16
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)


def open_image(path: Path) -> Image.Image:
    """Open an image, reading only its header; an unusable file raises IngestError."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise IngestError("unreadable", f"cannot read {path.name}: {exc.strerror or exc}") from exc
    if size == 0:
        raise IngestError("empty", f"{path.name} is empty (0 bytes)")
    try:
        return Image.open(path, formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as exc:
        raise IngestError("image_too_large", f"{path.name}: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise IngestError(
            "not_image", f"{path.name} is not a PNG, JPEG, TIFF or WebP image"
        ) from exc
    except DECODE_ERRORS as exc:
        raise IngestError("corrupt", f"{path.name}: unreadable image header: {exc}") from exc


def frame_count(image: Image.Image) -> int:
    """Pages in an image file: every frame of a TIFF, only the first of anything else."""
    return getattr(image, "n_frames", 1) if image.format == "TIFF" else 1


def count_pages(files: list[Path], limit: int | None) -> int:
    """Pages in the files, counted from their headers; counting stops once above `limit`."""
    total = 0
    for path in files:
        if limit is not None and total > limit:
            break
        with open_image(path) as image:
            try:
                total += frame_count(image)
            except DECODE_ERRORS as exc:
                raise IngestError(
                    "corrupt", f"{path.name}: cannot count its frames: {exc}"
                ) from exc
    return total


def decode_frame(image: Image.Image, frame: int, name: str, cfg: IngestConfig) -> Image.Image:
    """Seek to a frame, check its size from the header, then decode every pixel of it."""
    try:
        image.seek(frame)
        width, height = image.size
        limit = DECODE_PIXEL_FACTOR * cfg.max_pixels
        if width * height > limit:
            raise IngestError(
                "image_too_large",
                f"{name} frame {frame}: {width} x {height} pixels is above the decode limit "
                f"({DECODE_PIXEL_FACTOR} x max_pixels = {limit})",
            )
        image.load()  # truncated data fails here (Pillow's LOAD_TRUNCATED_IMAGES is left False)
    except DECODE_ERRORS as exc:
        raise IngestError("corrupt", f"{name} frame {frame}: {exc}") from exc
    return image


def upright_on_white(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation, flatten transparency onto white, bring 16-bit gray to 8-bit."""
    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I;16"):  # convert() would clip every value above 255 to white
        image = image.convert("I").point(lambda value: value / 256).convert("L")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    return image


def decoded_frames(path: Path, cfg: IngestConfig) -> Iterator[Image.Image]:
    """The pages of one image file, decoded and upright, one at a time."""
    with open_image(path) as image:
        for frame in range(frame_count(image)):
            yield upright_on_white(decode_frame(image, frame, path.name, cfg))


def iter_file_pages(
    files: list[Path], doc_id: str, source: str, cfg: IngestConfig
) -> Iterator[Page]:
    """Pages of one document made of image files, in the order given (at most cfg.max_pages)."""
    found = count_pages(files, cfg.max_pages)
    n_pages = found if cfg.max_pages is None else min(found, cfg.max_pages)
    frames = chain.from_iterable(decoded_frames(path, cfg) for path in files)
    for index, image in enumerate(islice(frames, n_pages)):
        # A blank image (no ink) has nothing for OCR to read.
        text_source = NONE if cfg.ocr == "never" or is_blank(image) else PENDING_OCR
        data, width, height = encode_image(image, cfg)
        yield Page(
            doc_id=doc_id,
            source=source,
            kind="images",
            page=index,
            n_pages=n_pages,
            text="",
            text_source=text_source,
            image=data,
            width=width,
            height=height,
        )
    if found > n_pages:
        raise IngestError(
            "page_cap",
            f"the document has more than {n_pages} pages; only the first {n_pages} were read"
            " (ingest.max_pages)",
        )


def iter_image_pages(path: Path, doc_id: str, cfg: IngestConfig) -> Iterator[Page]:
    """Yield the pages of a PNG, JPEG, WebP or (multi-page) TIFF file; OCR supplies the text."""
    yield from iter_file_pages([path], doc_id, path_text(path), cfg)


def natural_key(path: Path) -> tuple[list[int | str], str]:
    """Sort key that puts page2 before page10 (the name itself breaks ties like 1 and 01)."""
    parts = re.split(r"(\d+)", path.name)
    return [int(part) if i % 2 else part.casefold() for i, part in enumerate(parts)], path.name


def page_files(folder: Path) -> list[Path]:
    """The image files directly in the folder (hidden ones skipped), in natural order."""
    files = [
        path
        for path in folder.iterdir()
        if path.suffix.lower() in IMAGE_SUFFIXES
        and not path.name.startswith(".")
        and path.is_file()
    ]
    return sorted(files, key=natural_key)


def iter_folder_pages(folder: Path, doc_id: str, cfg: IngestConfig) -> Iterator[Page]:
    """Yield the pages of a folder of page images: one document, its files in natural order."""
    try:
        files = page_files(folder)
    except OSError as exc:
        raise IngestError("unreadable", f"cannot list {folder}: {exc.strerror or exc}") from exc
    if not files:
        raise IngestError("no_pages", f"{folder} holds no PNG, JPEG, TIFF or WebP files")
    yield from iter_file_pages(files, doc_id, path_text(folder), cfg)


def document_id_for_folder(folder: Path) -> str:
    """sha256 over the page files' names and bytes (hex prefix); of the path when unreadable."""
    digest = hashlib.sha256()
    try:
        for path in page_files(folder):
            digest.update(os.fsencode(path.name) + f"\0{file_sha256(path)}".encode())
    except OSError:
        digest.update(b"unreadable:" + os.fsencode(folder))
    return digest.hexdigest()[:16]
