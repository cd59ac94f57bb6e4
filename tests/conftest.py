"""Shared fixtures: real sample PDFs and real broken inputs built on the fly."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pymupdf
import pytest
from pptx import Presentation
from pptx.util import Inches
from serve_fixtures import TransformersServer, bundled_model_folder

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"


@pytest.fixture
def report_pdf() -> Path:
    return SAMPLES / "water_utility_annual_report.pdf"


@pytest.fixture
def slides_pdf() -> Path:
    return SAMPLES / "quarterly_review_slides.pdf"


def make_pdf(path: Path, pages: list[str], width: float = 612, height: float = 792) -> Path:
    """A small born-digital PDF with one text paragraph per page."""
    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page(width=width, height=height)
        page.insert_textbox(pymupdf.Rect(50, 50, width - 50, height - 50), text, fontsize=11)
    doc.save(path, no_new_id=True)
    doc.close()
    return path


def make_bad_inputs(folder: Path) -> dict[str, Path]:
    """The four bad inputs of the walking-skeleton issue, keyed by the error code each must get."""
    folder.mkdir(parents=True, exist_ok=True)
    empty = folder / "empty.pdf"
    empty.write_bytes(b"")
    not_pdf = folder / "notes.pdf"
    not_pdf.write_text("These are meeting notes saved with the wrong extension.\n" * 20)
    corrupt = folder / "corrupt.pdf"
    corrupt.write_bytes(
        b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 9 0 R >>\n" + bytes(range(256)) * 8
    )
    encrypted = folder / "encrypted.pdf"
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "Top secret quarterly numbers.")
    doc.save(encrypted, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="hunter2", owner_pw="owner")
    doc.close()
    return {"empty": empty, "not_pdf": not_pdf, "corrupt": corrupt, "encrypted": encrypted}


@pytest.fixture
def bad_inputs(tmp_path: Path) -> dict[str, Path]:
    return make_bad_inputs(tmp_path / "bad")


def make_deck(
    path: Path,
    slides: list[tuple[str, str]],
    notes: dict[int, str] | None = None,
    hidden: tuple[int, ...] = (),
) -> Path:
    """A 16:9 PPTX of titled slides with a body text each, speaker notes and hidden slides."""
    deck = Presentation()
    deck.slide_width, deck.slide_height = Inches(13.333), Inches(7.5)
    for title, body in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text_frame.text = body
    for index, text in (notes or {}).items():
        deck.slides[index].notes_slide.notes_text_frame.text = text
    for index in hidden:
        deck.slides[index].element.set("show", "0")
    deck.save(path)
    return fixed_zip_times(path)


def fixed_zip_times(path: Path) -> Path:
    """The zip (an Office file) rewritten with one fixed time for every entry: the same deck
    gives the same bytes, so the same doc_id, unit ids, prompts and replies, on every run."""
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in entries:
            fixed = zipfile.ZipInfo(info.filename, date_time=(2026, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(fixed, data)
    return path


# End-to-end tests check the pipeline's mechanics; the Docmatix rules have their own tests.
LENIENT_CHAIN = "name: lenient\nfilters:\n  - type: non_empty\n"


def run_curation(*args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    """The real command line, run from the repository root as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "curation", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def serve_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransformersServer]:
    """A real `transformers serve` on the bundled SmolLM2 (CPU), shared by the session's tests.
    Tests may stop() and start() it again; its base_url stays the same."""
    server = TransformersServer(
        bundled_model_folder(), tmp_path_factory.mktemp("serve") / "server.log"
    )
    server.start()
    yield server
    server.stop()
