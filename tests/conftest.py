"""Shared fixtures: real sample PDFs and real broken inputs built on the fly, the session's one
local Ray, and the guard that keeps `make test-fast` (`-m "not e2e"`) free of Ray, model
processes and servers."""

from __future__ import annotations

import contextlib
import importlib.util
import re
import subprocess
import sys
import time
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


# Documents of two short pages: small prompts, so a unit takes seconds on a CPU.
SHORT_DOCUMENTS = {
    "lighthouse.pdf": [
        "The Harbour Point lighthouse was built in 1871 from local granite. Its lamp burned "
        "whale oil until 1902, when a kerosene burner replaced it.",
        "Keeper Ada Morrow tended the light for 31 years. In the storm of 1913 she kept the "
        "lamp lit for three nights and guided nine fishing boats home.",
    ],
    "council.pdf": [
        "The city council met on 4 March. Members approved a budget of 2.4 million euros for "
        "road repairs and a new cycle lane on River Street.",
        "The council postponed the vote on the library extension to April, because the "
        "architect's cost estimate arrived late.",
    ],
    "ebike.pdf": [
        "Charge the e-bike battery for four hours before the first ride. A full charge gives "
        "about 60 km of assisted riding in eco mode.",
        "Check the tyre pressure every week: 3.5 bar for the front wheel and 4 bar for the rear.",
    ],
}


def make_pdf(path: Path, pages: list[str], width: float = 612, height: float = 792) -> Path:
    """A small born-digital PDF with one text paragraph per page."""
    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page(width=width, height=height)
        page.insert_textbox(pymupdf.Rect(50, 50, width - 50, height - 50), text, fontsize=11)
    doc.save(path, no_new_id=True)
    doc.close()
    return path


def blank_pdf(n_pages: int) -> bytes:
    """A valid PDF of n blank Letter pages, written out directly: PyMuPDF's new_page takes
    about 10 s for 10,000 pages."""
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{' '.join(f'{3 + i} 0 R' for i in range(n_pages))}] "
        f"/Count {n_pages} >>",
        *["<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>"] * n_pages,
    ]
    pdf, offsets = bytearray(b"%PDF-1.7\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(pdf))
        pdf += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(pdf)
    pdf += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    pdf += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    pdf += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    pdf += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(pdf)


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


def shell_escape(marker: Path) -> str:
    """Jinja2 that runs a shell command creating `marker` when a plain Environment renders it
    (the classic escape through a global's `__globals__`); the sandbox refuses it."""
    return f"{{{{ cycler.__init__.__globals__.os.popen('touch {marker}').read() }}}}"


def write_prompt(folder: Path, name: str, body: str, front: str = "") -> Path:
    """A prompt template `name`.j2 in `folder` (made if missing): id `<folder name>/<name>`,
    the front matter lines `front`, and `body` (Jinja with `system` and `user` blocks)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.j2"
    path.write_text(f"---\nid: {folder.name}/{name}\n{front}---\n{body}", encoding="utf-8")
    return path


def run_curation(*args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    """The real command line, run from the repository root as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "curation", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def curation_cli(*args: str):
    """The real command line in this process (typer's CliRunner): a run shares the session's
    Ray (ray_local) instead of paying a process and a Ray start-up of its own. The result has
    exit_code and output (stdout and stderr)."""
    from typer.testing import CliRunner

    from curation.cli import app

    return CliRunner().invoke(app, list(args))


@pytest.fixture
def one_pair_server() -> Iterator:
    """A scripted OpenAI-compatible server (a FAKE standing in for vLLM: scripted_server.py)
    giving every request the same one-pair reply: for a run whose test is about what happens
    around the model (inputs, names, the journal), where loading the bundled model in a
    generation actor would only cost time. Its `requests` lists what it was asked."""
    from scripted_server import scripted_server

    reply = "Q1: What does the page record?\nA1: The figures on the page."
    with scripted_server(lambda messages: reply) as server:
        yield server


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


# --- One local Ray per pytest session -------------------------------------------------------
# Every test that runs the pipeline in this process (run_recipe, `curation run` or `filter`
# through typer's CliRunner, Ray dedup, Ray Train) shares one local Ray, started once through the
# product's own init_ray and shut down at the end of the session: no test pays Ray's start-up,
# and none finds what an earlier one left running (`ray_local` waits for every CPU to be free
# again after each test, and fails the test that holds one). Tests of a cluster of their own
# start `ray start` nodes in other processes (cluster_fixtures.py) and are not affected.


# --- vLLM's shared memory ----------------------------------------------------------------------
# vLLM leaves segments in /dev/shm (psm_*, ~0.5 GB a run) behind. Where it is installed (the
# tests/vllm_cpu/ session, `make test-vllm`), the session removes those it made: new since it
# began and mapped by no process, never another's. Autouse and session-wide, so it is set up
# before the session's Ray and finishes after it: the vLLM actors of Ray's workers hold their
# segments until then.
SHM = Path("/dev/shm")


def psm_segments() -> set[str]:
    return {path.name for path in SHM.glob("psm_*")} if SHM.is_dir() else set()


def mapped_segments() -> set[str]:
    """The psm_* segments some process still maps (another run's, or one in use)."""
    mapped = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        with contextlib.suppress(OSError):
            mapped.update(
                line.rsplit("/", 1)[-1].strip()
                for line in maps.read_text().splitlines()
                if "/dev/shm/psm_" in line
            )
    return mapped


@pytest.fixture(scope="session", autouse=True)
def own_shared_memory() -> Iterator[None]:
    spec = importlib.util.find_spec("vllm")
    if spec is None or spec.origin is None:  # not installed (a namespace: some folder named so)
        yield
        return
    before = psm_segments()
    yield
    left = psm_segments() - before - mapped_segments()
    for name in left:
        with contextlib.suppress(OSError):
            (SHM / name).unlink()
    if left:
        print(f"\nremoved {len(left)} shared-memory segment(s) vLLM left: {sorted(left)}")


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    import ray

    from curation.runtime import init_ray

    assert not ray.is_initialized(), "Ray was started outside the ray_session fixture"
    init_ray()
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def ray_local(ray_session: None) -> Iterator[None]:
    """The session's local Ray; after the test, every CPU must be free again (an actor or task
    the test left running would change what the next test can schedule)."""
    import ray

    yield
    total = ray.cluster_resources().get("CPU", 0)
    deadline = time.monotonic() + 120
    while ray.available_resources().get("CPU", 0) < total:
        if time.monotonic() > deadline:
            pytest.fail(f"the test left Ray CPUs in use: {ray.available_resources()} of {total}")
        time.sleep(0.2)


# --- The e2e guard ---------------------------------------------------------------------------
# A test that starts Ray, a model process (`curation run`, `train`) or a server (`transformers
# serve`, vLLM, `curation view`) must carry the e2e marker, so that `make test-fast`
# (-m "not e2e") stays the quick loop. Python's audit hook sees every process a test starts
# (Ray's own daemons included); a test without the marker that starts one fails, naming it.
HEAVY_COMMANDS = {
    r"gcs_server": "Ray (its GCS)",
    r"raylet": "Ray (a raylet)",
    r"-m curation (run|train|view)\b": "a `curation run`, `train` or `view` process",
    r"-m curation\.train\b": "a training process",
    r"transformers\.cli": "a `transformers serve` server",
    r"vllm": "a vLLM server",
}
_started: list[str] | None = None  # what the current non-e2e test started


def _audit(event: str, args: tuple) -> None:
    if event == "subprocess.Popen" and _started is not None:
        command = args[1]
        if isinstance(command, str | bytes):
            command = [command]
        line = " ".join(str(part) for part in command or [])
        _started.extend(what for key, what in HEAVY_COMMANDS.items() if re.search(key, line))


sys.addaudithook(_audit)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    global _started
    _started = None if item.get_closest_marker("e2e") else []
    try:
        return (yield)
    finally:
        _started = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    result = yield
    if _started:  # set up or called by this test
        pytest.fail(
            f"{item.nodeid} starts {', '.join(sorted(set(_started)))} but is not marked e2e "
            "(`make test-fast` runs -m 'not e2e')",
            pytrace=False,
        )
    return result
