"""Slide decks through real LibreOffice: slide pages, titles and notes, refused archives."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import make_deck
from PIL import Image

from curation.config import IngestConfig
from curation.ingest.errors import IngestError
from curation.ingest.slides import (
    INFLATE_CHUNK,
    inflated_size,
    iter_office_pages,
    pptx_extras,
    with_extras,
)
from curation.schema import Page

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")


def require_libreoffice() -> None:
    """Skip a test that needs LibreOffice where it is missing, except in CI (`CI` set), where
    `make setup` installs it (`make system-deps`): there its absence fails the test."""
    if SOFFICE is None:
        if os.environ.get("CI"):
            pytest.fail("LibreOffice is not installed; CI runs `make setup`, which installs it")
        pytest.skip("LibreOffice is not installed (`make system-deps` installs it as root)")


@pytest.fixture
def libreoffice() -> None:
    require_libreoffice()


needs_libreoffice = pytest.mark.usefixtures("libreoffice")

SLIDES = [
    ("Harbor Kickoff", "Tugboats carry quartzite north"),
    ("Lantern Roadmap", "Walrus nebula milestones"),
    ("Falcon Budget", "Prism ledger overruns"),
]
NOTES = "Mention the capybara metric before the break."


def deck(path: Path, hidden: tuple[int, ...] = ()) -> Path:
    """Three titled slides with distinctive words; slide 2 has speaker notes."""
    return make_deck(path, SLIDES, {1: NOTES}, hidden)


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    """A zip archive holding the given members."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def ingest_error(path: Path, cfg: IngestConfig | None = None) -> IngestError:
    """The IngestError that ingesting the file raises."""
    with pytest.raises(IngestError) as err:
        list(iter_office_pages(path, "d", cfg or IngestConfig()))
    return err.value


@pytest.fixture(scope="module")
def decks(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The deck as PPTX and as ODP (made by LibreOffice), ingested at the same time.

    The PPTX is read to the end; the ODP only up to its first page, then the consumer stops.
    Their temporary folders go to `scratch`, which must be empty afterwards.
    """
    require_libreoffice()
    folder = tmp_path_factory.mktemp("decks")
    scratch = tmp_path_factory.mktemp("scratch")
    pptx = deck(folder / "deck.pptx")
    profile = f"-env:UserInstallation={(folder / 'profile').as_uri()}"
    subprocess.run(
        [SOFFICE, profile, "--headless", "--convert-to", "odp", "--outdir", str(folder), str(pptx)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    odp = folder / "deck.odp"

    def first_page(path: Path) -> Page:
        pages = iter_office_pages(path, "odp-doc", IngestConfig())
        try:
            return next(pages)
        finally:
            pages.close()

    with pytest.MonkeyPatch.context() as patch, ThreadPoolExecutor(2) as pool:
        patch.setattr(tempfile, "tempdir", str(scratch))
        full = pool.submit(lambda: list(iter_office_pages(pptx, "pptx-doc", IngestConfig())))
        partial = pool.submit(first_page, odp)
        pptx_pages, odp_first = full.result(), partial.result()
    return {
        "pptx": pptx,
        "pptx_pages": pptx_pages,
        "odp": odp,
        "odp_first": odp_first,
        "leftovers": list(scratch.iterdir()),
    }


@needs_libreoffice
def test_pptx_slides_become_landscape_pages_with_their_words(decks):
    pages = decks["pptx_pages"]
    assert [p.page for p in pages] == [0, 1, 2]
    for page, (title, body) in zip(pages, SLIDES, strict=True):
        assert page.kind == "slides" and page.n_pages == 3 and page.doc_id == "pptx-doc"
        assert page.source == str(decks["pptx"])
        assert page.text.startswith(title) and body in page.text
        image = Image.open(io.BytesIO(page.image))
        assert image.size == (page.width, page.height)
        assert page.width > 1.5 * page.height


@needs_libreoffice
def test_speaker_notes_join_their_slide_text(decks):
    texts = [page.text for page in decks["pptx_pages"]]
    assert texts[1].endswith(f"\n\nSpeaker notes: {NOTES}")
    assert "Speaker notes" not in texts[0] + texts[2]


@needs_libreoffice
def test_odp_converts_and_early_stop_removes_temp_files(decks):
    page = decks["odp_first"]
    assert page.kind == "slides" and page.page == 0 and page.n_pages == 3
    assert page.source == str(decks["odp"])
    assert SLIDES[0][1] in page.text
    assert page.width > page.height
    assert decks["leftovers"] == []


@needs_libreoffice
def test_zip_with_garbage_parts_fails_with_libreoffice_output(tmp_path):
    path = make_zip(
        tmp_path / "garbage.pptx",
        {"[Content_Types].xml": os.urandom(2000), "ppt/presentation.xml": os.urandom(2000)},
    )
    error = ingest_error(path)
    assert error.code == "convert_failed"
    assert "could not be loaded" in error.message


@needs_libreoffice
def test_timeout_kills_libreoffice_and_removes_temp_files(decks, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    error = ingest_error(decks["pptx"], IngestConfig(convert_timeout_s=0.3))
    assert error.code == "convert_timeout"
    assert list(tmp_path.iterdir()) == []
    if Path("/proc").is_dir():  # no LibreOffice process left running on our profile
        deadline = time.monotonic() + 60  # SIGKILLed processes vanish at once; generous bound
        while (left := processes_using(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert left == []


def processes_using(folder: Path) -> list[str]:
    """Command lines of running processes that name the folder."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_text(errors="replace")
        except OSError:
            continue
        if str(folder) in text:
            found.append(text)
    return found


def test_missing_libreoffice_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    error = ingest_error(deck(tmp_path / "deck.pptx"))
    assert error.code == "libreoffice_missing"
    assert "apt-get install libreoffice-impress" in error.message


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("random.pptx", os.urandom(5000), "not_office"),
        ("notes.odp", b"Meeting notes saved with the wrong extension.\n" * 20, "not_office"),
        ("cut.pptx", b"PK\x03\x04" + os.urandom(3000), "corrupt"),
        ("empty.pptx", b"", "empty"),
        ("old.ppt", b"PK\x03\x04 not an OLE2 file", "not_office"),
    ],
)
def test_unusable_bytes_are_refused_before_conversion(tmp_path, name, content, code):
    path = tmp_path / name
    path.write_bytes(content)
    assert ingest_error(path).code == code


def test_zip_that_is_not_a_deck_is_refused(tmp_path):
    path = make_zip(tmp_path / "junk.pptx", {"hello.txt": b"just some text"})
    error = ingest_error(path)
    assert error.code == "not_office"
    assert "[Content_Types].xml" in error.message


def zeros_deck(path: Path, mb: int, declared: int | None = None) -> Path:
    """A .pptx whose media member is `mb` MB of zeros (about 1,000x smaller deflated); with
    `declared`, both its headers claim that many uncompressed bytes instead, as a bomb lies."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("ppt/media/zeros.bin", "w") as member:
            for _ in range(mb):
                member.write(bytes(1 << 20))
    if declared is not None:
        data = bytearray(path.read_bytes())
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("ppt/media/zeros.bin")
            # The member's central directory entry: its name follows a 46-byte header.
            central = data.index(info.filename.encode(), archive.start_dir) - 46
        assert data[central : central + 4] == b"PK\x01\x02"
        struct.pack_into("<L", data, info.header_offset + 22, declared)  # the local header
        struct.pack_into("<L", data, central + 24, declared)  # the central directory entry
        path.write_bytes(bytes(data))
        with zipfile.ZipFile(path) as archive:
            assert archive.getinfo("ppt/media/zeros.bin").file_size == declared
    return path


def test_zip_bomb_is_refused_by_the_bytes_it_inflates(tmp_path):
    honest = zeros_deck(tmp_path / "bomb.pptx", 20)
    error = ingest_error(honest)
    assert error.code == "zip_bomb"
    assert "ppt/media/zeros.bin inflates" in error.message and "to 20 MB" in error.message
    # The same bomb declaring 1,000 bytes: refused on what it really inflates to.
    liar = zeros_deck(tmp_path / "liar.pptx", 20, declared=1000)
    error = ingest_error(liar)
    assert error.code == "zip_bomb"
    assert "ppt/media/zeros.bin inflates" in error.message and "to 20 MB" in error.message
    error = ingest_error(liar, IngestConfig(max_unzipped_mb=5))
    assert error.code == "zip_bomb"
    assert "above max_unzipped_mb (5)" in error.message


def test_inflating_stops_past_the_budget(tmp_path):
    liar = zeros_deck(tmp_path / "liar.pptx", 20, declared=1000)
    with zipfile.ZipFile(liar) as archive, liar.open("rb") as fh:
        member = archive.getinfo("ppt/media/zeros.bin")
        assert inflated_size(fh, member, 20 << 20)[0] == 20 << 20
        size, packed = inflated_size(fh, member, 2 << 20)
    assert 2 << 20 < size <= (2 << 20) + INFLATE_CHUNK
    assert 0 < packed < member.compress_size


def test_unzipped_size_cap(tmp_path):
    path = make_zip(
        tmp_path / "big.pptx",
        {"[Content_Types].xml": b"<Types/>", "ppt/media/noise.bin": os.urandom(2 << 20)},
    )
    error = ingest_error(path, IngestConfig(max_unzipped_mb=1))
    assert error.code == "zip_bomb"
    assert "above max_unzipped_mb (1)" in error.message
    assert "counted up to ppt/media/noise.bin" in error.message


def test_a_zip_member_in_another_compression_is_refused(tmp_path):
    path = tmp_path / "bz.pptx"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_BZIP2) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
    error = ingest_error(path)
    assert error.code == "not_office"
    assert "compression method 12" in error.message


def test_notes_follow_visible_slides_and_need_matching_counts(tmp_path):
    path = deck(tmp_path / "hidden.pptx", hidden=(1,))
    # LibreOffice leaves the hidden slide out: 2 PDF pages for slides 1 and 3.
    assert pptx_extras(path, 2) == [(SLIDES[0][0], ""), (SLIDES[2][0], "")]
    assert pptx_extras(path, 3) is None


def test_deck_python_pptx_cannot_read_gets_no_notes(tmp_path):
    path = make_zip(tmp_path / "broken.pptx", {"[Content_Types].xml": b"not xml"})
    assert pptx_extras(path, 1) is None


def test_title_is_added_once_and_notes_go_last():
    assert with_extras("Bullet one", "Big Title", "") == "Big Title\nBullet one"
    assert with_extras("Big\nTitle\nBullet one", "Big Title", "") == "Big\nTitle\nBullet one"
    assert with_extras("Body", "", "Say hello") == "Body\n\nSpeaker notes: Say hello"
