"""Image files and folders of page images as documents, and the images that must be refused."""

from __future__ import annotations

import io
import os
import shutil
import struct
import time
import zlib
from itertools import islice
from pathlib import Path

import pytest
from PIL import Image

from curation.config import IngestConfig
from curation.ingest.errors import IngestError
from curation.ingest.images import document_id_for_folder, iter_folder_pages, iter_image_pages
from curation.schema import Page


def save(path: Path, size: tuple[int, int], color: str = "white", **params) -> Path:
    """A solid RGB image in the format the suffix names."""
    Image.new("RGB", size, color).save(path, **params)
    return path


def decoded(page: Page) -> Image.Image:
    """The page image as Pillow reads it back."""
    return Image.open(io.BytesIO(page.image))


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares width x height but holds no pixels: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    path.write_bytes(signature + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


def ingest_error(path: Path, cfg: IngestConfig | None = None) -> IngestError:
    """The IngestError that ingesting the image file raises."""
    with pytest.raises(IngestError) as err:
        list(iter_image_pages(path, "d", cfg or IngestConfig()))
    return err.value


def scan(path: Path, size: tuple[int, int] = (640, 480)) -> Path:
    """A navy page with a white box on it: ink, no text layer (an image file has none)."""
    image = Image.new("RGB", size, "navy")
    image.paste("white", (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 3))
    image.save(path)
    return path


@pytest.mark.parametrize("name", ["scan.png", "photo.jpg", "photo.jpeg", "page.webp"])
def test_single_image_is_a_one_page_document_waiting_for_ocr(tmp_path, name):
    path = scan(tmp_path / name)
    [page] = iter_image_pages(path, "img", IngestConfig())
    assert (page.doc_id, page.source, page.kind) == ("img", str(path), "images")
    assert (page.page, page.n_pages, page.text, page.text_source) == (0, 1, "", "pending_ocr")
    image = decoded(page)
    assert image.format == "PNG" and image.mode == "RGB"
    assert image.size == (page.width, page.height) == (640, 480)


@pytest.mark.parametrize("name", ["blank.png", "blank.jpg", "blank.tif"])
def test_a_blank_image_is_not_sent_to_ocr(tmp_path, name):
    path = save(tmp_path / name, (640, 480), "white")
    [page] = iter_image_pages(path, "img", IngestConfig(ocr="always"))
    assert (page.text, page.text_source) == ("", "none")


def test_no_ocr_means_no_text_source(tmp_path):
    path = save(tmp_path / "scan.png", (64, 64))
    assert next(iter_image_pages(path, "d", IngestConfig(ocr="never"))).text_source == "none"


def test_every_tiff_frame_is_a_page(tmp_path):
    path = tmp_path / "fax.tiff"
    frames = [Image.new("RGB", (100 + 10 * i, 200), "gray") for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    pages = list(iter_image_pages(path, "d", IngestConfig()))
    assert [(p.page, p.n_pages, p.width) for p in pages] == [(0, 3, 100), (1, 3, 110), (2, 3, 120)]


def test_pages_beyond_max_pages_end_the_document_with_page_cap(tmp_path):
    path = tmp_path / "long.tiff"
    frames = [Image.new("L", (20, 20)) for _ in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    pages = iter_image_pages(path, "d", IngestConfig(max_pages=2))
    assert [(p.page, p.n_pages) for p in islice(pages, 2)] == [(0, 2), (1, 2)]
    with pytest.raises(IngestError) as err:
        next(pages)
    assert err.value.code == "page_cap"


def test_encoding_follows_the_config(tmp_path):
    path = save(tmp_path / "wide.png", (4000, 1000), "red")
    cfg = IngestConfig(max_image_side=1000, image_format="jpeg", grayscale=True)
    page = next(iter_image_pages(path, "d", cfg))
    image = decoded(page)
    assert (image.format, image.mode, image.size) == ("JPEG", "L", (1000, 250))


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90 degrees clockwise
    Image.new("RGB", (300, 100)).save(path, exif=exif)
    page = next(iter_image_pages(path, "d", IngestConfig()))
    assert (page.width, page.height) == (100, 300)


def test_transparency_becomes_white_not_black(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (50, 50), (0, 0, 0, 0)).save(path)
    page = next(iter_image_pages(path, "d", IngestConfig()))
    assert decoded(page).getpixel((10, 10)) == (255, 255, 255)


def test_sixteen_bit_gray_keeps_its_shades(tmp_path):
    path = tmp_path / "archive.png"
    Image.new("I;16", (40, 40), 40000).save(path)
    page = next(iter_image_pages(path, "d", IngestConfig(grayscale=True)))
    assert decoded(page).getpixel((5, 5)) == 40000 // 256


@pytest.mark.parametrize(("name", "fmt"), [("cut.png", "PNG"), ("cut.jpg", "JPEG")])
def test_truncated_image_is_corrupt(tmp_path, name, fmt):
    buffer = io.BytesIO()
    Image.frombytes("RGB", (300, 300), os.urandom(300 * 300 * 3)).save(buffer, format=fmt)
    path = tmp_path / name
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    error = ingest_error(path)
    assert error.code == "corrupt"
    assert name in error.message


@pytest.mark.parametrize(
    ("width", "height", "cfg"),
    [
        (100_000, 100_000, IngestConfig()),  # above Pillow's own bomb limit too
        (2_000, 2_000, IngestConfig(max_pixels=100_000)),  # only above 16 x max_pixels
    ],
)
def test_huge_declared_size_is_refused_before_decoding(tmp_path, width, height, cfg):
    path = png_header_only(tmp_path / "bomb.png", width, height)
    start = time.perf_counter()
    error = ingest_error(path, cfg)
    assert time.perf_counter() - start < 1.0
    # 'corrupt' would mean it tried to decode the (missing) pixels.
    assert error.code == "image_too_large"


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("notes.png", b"Meeting notes saved with the wrong extension.\n" * 20, "not_image"),
        ("empty.jpg", b"", "empty"),
    ],
)
def test_unusable_files_get_clear_codes(tmp_path, name, content, code):
    path = tmp_path / name
    path.write_bytes(content)
    assert ingest_error(path).code == code


def make_page_folder(folder: Path) -> Path:
    """page10.png, page2.png and page1.png of widths 100, 20 and 10, plus files to ignore."""
    folder.mkdir()
    for number in (10, 2, 1):
        save(folder / f"page{number}.png", (10 * number, 50))
    (folder / "notes.txt").write_text("not a page")
    (folder / ".hidden.png").write_bytes(b"macOS metadata")
    return folder


def test_folder_pages_come_in_natural_order(tmp_path):
    folder = make_page_folder(tmp_path / "scan")
    pages = list(iter_folder_pages(folder, "f", IngestConfig()))
    assert [p.width for p in pages] == [10, 20, 100]
    assert [(p.page, p.n_pages, p.source, p.kind) for p in pages] == [
        (i, 3, str(folder), "images") for i in range(3)
    ]


def test_folder_tiff_frames_continue_the_page_numbers(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    save(folder / "a1.png", (10, 10))
    frames = [Image.new("RGB", (20 + i, 20)) for i in range(2)]
    frames[0].save(folder / "a2.tif", save_all=True, append_images=frames[1:])
    pages = list(iter_folder_pages(folder, "f", IngestConfig()))
    assert [(p.page, p.n_pages, p.width) for p in pages] == [(0, 3, 10), (1, 3, 20), (2, 3, 21)]


def test_empty_folder_has_no_pages(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(IngestError) as err:
        list(iter_folder_pages(tmp_path, "f", IngestConfig()))
    assert err.value.code == "no_pages"


def test_folder_id_depends_on_page_names_and_bytes_only(tmp_path):
    folder = make_page_folder(tmp_path / "scan")
    doc_id = document_id_for_folder(folder)
    assert len(doc_id) == 16 and doc_id == document_id_for_folder(folder)
    copy = shutil.copytree(folder, tmp_path / "elsewhere")
    (copy / "notes.txt").write_text("edited notes are not pages")
    assert document_id_for_folder(copy) == doc_id
    (copy / "page2.png").rename(copy / "page3.png")
    assert document_id_for_folder(copy) != doc_id
    save(folder / "page2.png", (20, 50), "black")
    assert document_id_for_folder(folder) != doc_id
