"""The browser app of `curation view` in a real browser: Debian's Chromium, headless, driven by
Playwright (never `playwright install`: the system's build is used). The sites are built by
`curation.view.site.build_site` from output folders written the way a run writes them, opened
from file:// and served over http by `curation.view.serve.serve`.

Without Chromium the tests are skipped, except in CI (CI=true), where they fail: `make setup`
installs it (`make system-deps`). CURATION_CHROMIUM names another Chromium build."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import statistics
import threading
import time
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from output_fixtures import TINY_MANIFEST, document_units, outcome
from PIL import Image
from test_view_site import filtered

from curation.output.card import write_card
from curation.output.shards import DatasetWriter
from curation.schema import SAMPLE_SCHEMA, Outcome
from curation.units import error_row
from curation.view.serve import serve
from curation.view.site import build_site, write_js

PLANTED = "<script>window.pwned=1</script><b>bold</b>"
PLANTED_REPLY = "Q1: </pre><script>window.pwned=2</script><i>raw</i>"
SYNTHETIC_SAMPLES = 10_000
FIRST_PAGE_S = 2.0  # issue 19's goals for a 10,000-sample site
NEXT_PAGE_P95_S = 0.5
READY_MS = 15_000  # how long a page may take to render before a test gives up


# ---------------------------------------------------------------- the browser


def chromium_path() -> Path | None:
    named = os.environ.get("CURATION_CHROMIUM")
    candidates = [Path(named)] if named else [Path("/usr/bin/chromium")]
    if not named and shutil.which("chromium"):
        candidates.append(Path(shutil.which("chromium")))
    return next((path for path in candidates if path.is_file()), None)


def unavailable(why: str) -> None:
    """Skip, or in CI fail: CI must run these tests."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI needs chromium: make setup installs it ({why})")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if path is None:
        named = os.environ.get("CURATION_CHROMIUM") or "/usr/bin/chromium"
        unavailable(
            f"no Chromium at {named}: `make system-deps` installs Debian's chromium "
            "(or set CURATION_CHROMIUM to a Chromium build)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed: pip install -e '.[dev]'")
    with sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=str(path), headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


class Tab:
    """One browser page, with the errors it logged."""

    def __init__(self, browser) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(READY_MS)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on(
            "console",
            lambda msg: (
                self.errors.append(f"{msg.text} ({msg.location.get('url')})")
                if msg.type == "error"
                else None
            ),
        )

    def open(self, url: str, route: str) -> None:
        """Load the app at `url` + #/route and wait for that route to render."""
        self.page.goto(f"{url}#/{route}")
        self.ready(route)

    def go(self, route: str) -> None:
        """Move to another route inside the loaded app."""
        self.page.evaluate("route => { location.hash = '#/' + route; }", route)
        self.ready(route)

    def ready(self, route: str | None = None) -> str:
        """Wait until #view has rendered `route` (any route: None); the route rendered."""
        self.page.wait_for_function(
            """route => {
                const view = document.getElementById("view");
                const ready = view.getAttribute("data-ready");
                return ready !== null && !view.classList.contains("loading")
                    && (route === null || ready === route);
            }""",
            arg=route,
            timeout=READY_MS,
        )
        return self.page.get_attribute("#view", "data-ready")

    def count(self, selector: str) -> int:
        return self.page.locator(selector).count()

    def texts(self, selector: str) -> list[str]:
        return self.page.locator(selector).all_text_contents()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser):
    opened = Tab(browser)
    yield opened
    opened.close()
    assert not opened.errors, opened.errors


# ---------------------------------------------------------------- output folders and sites


def judged(
    made: Outcome, axes: dict[str, float], evidence: list[int], qtypes: list[str]
) -> Outcome:
    """An Outcome with per-axis ratings on the judge's decisions, 1-based evidence pages and
    question types on its pairs."""
    for pair, qtype in zip(made.reply.pairs, qtypes, strict=True):
        pair.evidence_pages = evidence
        pair.question_type = qtype
        for decision in pair.decisions:
            if decision.filter == "judge":
                decision.ratings = [{"axis": a, "score": s} for a, s in axes.items()]
    return made


def write_output(out_dir: Path, variant: str) -> None:
    """A finished output folder: 2 documents (5 pages, 3 units) and 1 broken input. `variant`
    "here" plants markup in a kept answer and in an unreadable reply; "there" keeps and rejects
    other pairs (for a comparison)."""
    report = document_units("aaaa1111", "docs/report.pdf", n_pages=3, pages_per_unit=2)
    slides = document_units("bbbb2222", "docs/slides.pdf", n_pages=2, pages_per_unit=2)
    here = variant == "here"
    writer = DatasetWriter(
        out_dir, rows_per_shard=2, inputs=["docs/report.pdf", "docs/slides.pdf", "docs/broken.pdf"]
    )
    first = outcome(
        report[0],
        [
            ("What grew on page 1?", "The budget grew by 10 percent.", here),
            ("What does the planted answer say?", PLANTED, True),
            ("Is [this] bad?", "Yes.", not here),
        ],
        judge=4.0,
    )
    writer.add(judged(first, {"relevance": 4.0, "clarity": 5.0}, [2], ["extractive"] * 3))
    second = outcome(
        report[1],
        [("What is on the last page?", "A budget growth of 12 percent.", True)],
        prompt_id="docmatix/summary",
        judge=2.0,
        parse_errors=("question without an answer",),
    )
    second.reply.raw_reply = PLANTED_REPLY
    writer.add(judged(second, {"relevance": 2.0}, [3], ["multi_hop"]))
    third = outcome(
        slides[0],
        [
            ("What do the slides show?", "Two pages about the budget.", True),
            ("Which source is this?", "docs/slides.pdf", True),
        ],
        judge=3.0,
    )
    writer.add(judged(third, {"relevance": 3.0}, [1, 2], ["extractive", "multi_hop"]))
    writer.add(outcome(error_row("cccc3333", "docs/broken.pdf", "corrupt", "cannot open"), []))
    writer.close(dict(TINY_MANIFEST))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> dict:
    """The output folder ("out", with the card's plots), the one it is compared with ("other"),
    the site built from both ("site") and its file:// URL ("url")."""
    root = tmp_path_factory.mktemp("view")
    out, other = root / "tiny", root / "tiny-other"
    write_output(out, "here")
    write_card(out)
    write_output(other, "there")
    site = root / "site"
    overview = build_site(out, site, compare=other)
    return {
        "out": out,
        "other": other,
        "site": site,
        "overview": overview,
        "url": (site / "index.html").as_uri(),
    }


@pytest.fixture(scope="module")
def served(dataset):
    """The same folders served over http by `serve` (port 0) in a thread; its URL."""
    ready, stop = threading.Event(), threading.Event()
    found: list[str] = []

    def on_ready(url: str) -> None:
        found.append(url)
        ready.set()

    thread = threading.Thread(
        target=serve,
        kwargs={
            "out_dir": dataset["out"],
            "port": 0,
            "compare": dataset["other"],
            "on_ready": on_ready,
            "stop": stop,
        },
        daemon=True,
    )
    thread.start()
    assert ready.wait(60), "the server did not start"
    yield found[0]
    stop.set()
    thread.join(10)


# ---------------------------------------------------------------- every page


def click_through(tab: Tab, url: str, overview: dict) -> None:
    """Open the app at `url` and visit every page through the navigation links."""
    tab.open(url, "overview")
    funnel = dict(
        (row[0], row[1])
        for row in (
            tab.page.locator("table#funnel tbody tr").evaluate_all(
                "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
            )
        )
    )
    assert funnel["pairs kept"] == "5"
    assert funnel["documents"] == "3"
    assert tab.count("table.counts") >= 4
    assert "docmatix/coverage" in " ".join(tab.texts("table.counts"))
    assert tab.page.locator("#banner").is_hidden()  # a finished run
    plots = tab.page.locator(".plot img")
    assert plots.count() == len(overview["plots"]) >= 1
    plots.first.scroll_into_view_if_needed()
    tab.page.wait_for_function(
        "() => [...document.querySelectorAll('.plot img')].every(i => i.complete)"
    )
    assert plots.first.evaluate("img => img.naturalWidth") > 0

    tab.page.click("a#nav-samples")
    tab.ready("samples")
    assert tab.count(".sample") == 3
    assert tab.count(".sample .pair") == 5
    assert tab.page.text_content("#page-info") == "page 1 of 1"
    thumb = tab.page.locator(".thumb").first
    tab.page.wait_for_function("() => document.querySelector('.thumb').complete")
    assert thumb.evaluate("img => img.naturalWidth") > 0

    tab.page.click("a#nav-rejects")
    tab.ready("rejects")
    assert tab.count(".reject") == overview["rejects"]["total"] == 2
    filters = sorted(tab.page.locator(".reject").evaluate_all("r => r.map(e => e.dataset.filter)"))
    assert filters == ["parse", "rule"]

    tab.page.click("a#nav-errors")
    tab.ready("errors")
    assert tab.count(".error-row") == 1
    row = tab.page.text_content(".error-row")
    for part in ("corrupt", "ingest", "docs/broken.pdf", "cannot open"):
        assert part in row

    assert tab.page.locator("a#nav-compare").is_visible()
    tab.page.click("a#nav-compare")
    tab.ready("compare")
    rows = tab.texts(".compare-row")
    assert len(rows) == 2
    assert any("What grew on page 1?" in r and "kept" in r and "rule" in r for r in rows)
    assert any("Is [this] bad?" in r for r in rows)

    tab.page.click("a#nav-overview")
    tab.ready("overview")


def test_every_page_from_file(tab, dataset):
    click_through(tab, dataset["url"], dataset["overview"])


def test_every_page_over_http(tab, dataset, served):
    assert served.startswith("http://127.0.0.1:")
    click_through(tab, served, dataset["overview"])
    # The server answers only inside the site.
    response = tab.page.request.get(served + "data/..%2F..%2Fetc/passwd")
    assert response.status in (403, 404)


def test_compare_link_is_hidden_without_a_comparison(tab, dataset, tmp_path):
    site = tmp_path / "plain"
    build_site(dataset["out"], site)
    tab.open((site / "index.html").as_uri(), "overview")
    assert tab.page.locator("a#nav-compare").is_hidden()
    tab.go("compare")
    assert tab.count(".compare-row") == 0


def test_a_running_run_and_a_truncated_site_say_so(tab, dataset, tmp_path):
    site = tmp_path / "partial"
    overview = build_site(dataset["out"], site, max_samples=1)
    assert overview["samples"]["truncated_from"] == 3
    # A run in progress, as the builder marks it (a journal folder is another test's matter).
    write_js(site, "overview", {**overview, "status": "running"})
    tab.open((site / "index.html").as_uri(), "overview")
    assert tab.page.locator("#banner").is_visible()
    assert "still running" in tab.page.text_content("#banner")
    assert "the first 1 of 3 samples" in tab.page.text_content("#truncated")
    tab.go("samples")
    assert tab.count(".sample") == 1


@pytest.mark.parametrize("layout", ["docmatix_parquet", "flat_jsonl"])
def test_the_output_of_filter_pages_from_file(tab, tmp_path, layout):
    """Kept Docmatix rows (images, no ids) and flat rows (no images) render as samples."""
    out = filtered(layout, tmp_path)
    overview = build_site(out, tmp_path / "site")
    tab.open((tmp_path / "site" / "index.html").as_uri(), "overview")
    assert tab.page.text_content(".overview .status") == "filtered"
    funnel = [
        cells[0]
        for cells in tab.page.locator("table#funnel tbody tr").evaluate_all(
            "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
        )
    ]
    assert funnel == [label for label, _ in overview["funnel"]]
    tab.go("samples")
    assert tab.count(".sample") == overview["samples"]["total"] > 0
    assert tab.count(".sample .thumb") == (4 if layout == "docmatix_parquet" else 0)
    tab.go("rejects")
    assert tab.count(".reject") == overview["rejects"]["total"] > 0
    tab.go("errors")
    assert tab.count(".error-row") == 0


# ---------------------------------------------------------------- search, filters, links, zoom


def test_search_and_filters_narrow_the_samples(tab, dataset):
    tab.open(dataset["url"], "samples")
    tab.page.fill("#search", "SLIDES")  # case-insensitive, question or answer
    tab.ready("samples?q=SLIDES")
    assert tab.texts(".sample .doc") == ["bbbb2222"]
    assert "1 of 3 samples match" in tab.page.text_content("#list-status")

    tab.page.fill("#search", "")
    tab.ready("samples")
    tab.page.select_option("#filter-doc", "aaaa1111")
    tab.ready("samples?doc=aaaa1111")
    assert tab.count(".sample") == 2

    tab.page.select_option("#filter-doc", "")
    tab.ready("samples")
    tab.page.select_option("#filter-prompt", "docmatix/summary")
    tab.ready("samples?prompt=docmatix%2Fsummary")
    assert tab.texts(".pair.match .question") == ["What is on the last page?"]

    tab.page.select_option("#filter-prompt", "")
    tab.ready("samples")
    tab.page.select_option("#filter-type", "multi_hop")
    tab.ready("samples?type=multi_hop")
    assert sorted(tab.texts(".pair.match .question")) == [
        "What is on the last page?",
        "Which source is this?",
    ]

    tab.page.select_option("#filter-type", "")
    tab.ready("samples")
    tab.page.fill("#filter-rating", "3")
    tab.page.dispatch_event("#filter-rating", "change")
    tab.ready("samples?rating=3")
    assert tab.count(".sample") == 2  # min rating 2 drops the unit of page 3

    # A route with filters opens as such; a search that matches nothing says so.
    tab.go("samples?q=no+such+words")
    assert tab.count(".sample") == 0
    assert tab.page.text_content("#page-info") == "page 1 of 1"


def test_samples_show_pages_meta_and_evidence(tab, dataset):
    tab.open(dataset["url"], "samples")
    card = tab.page.locator('.sample[data-id]:has-text("What grew on page 1?")')
    assert "docs/report.pdf#pages=1-2" in card.locator(".card-head").text_content()
    labels = card.locator(".page-label")
    assert labels.all_text_contents() == ["p. 1", "p. 2"]
    # evidence_pages [2] (1-based): page 2 is marked, page 1 is not.
    assert labels.evaluate_all("ls => ls.map(l => l.classList.contains('evidence'))") == [
        False,
        True,
    ]
    assert card.locator(".text-source").first.text_content() == "layer"
    pair = card.locator(".pair").first
    assert "docmatix/coverage" in pair.text_content()
    assert "relevance 4" in pair.locator(".ratings").text_content()
    assert "judge" in pair.locator(".scores").text_content()


def test_rejects_filter_and_unit_link(tab, dataset):
    tab.open(dataset["url"], "rejects")
    tab.page.click('a.filter-chip[data-filter="rule"]')
    tab.ready("rejects?filter=rule")
    rejects = tab.page.locator(".reject")
    assert rejects.count() == 1
    assert rejects.first.get_attribute("data-filter") == "rule"
    assert rejects.first.locator(".reason").text_content() == "bad"
    assert rejects.first.locator(".question").text_content() == "Is [this] bad?"
    link = rejects.first.locator("a.unit-link")
    route = link.get_attribute("href").removeprefix("#/")
    sample_id = unquote(route.removeprefix("sample/"))
    assert sample_id == "aaaa1111:0-1"
    link.click()
    tab.ready(route)
    assert tab.page.locator(".sample").evaluate_all("s => s.map(e => e.dataset.id)") == [sample_id]
    assert "What does the planted answer say?" in tab.page.text_content(".sample")

    # The unreadable reply is shown as the model wrote it, as text.
    tab.go("rejects?filter=parse")
    raw = tab.page.locator(".reject pre.raw-reply")
    assert raw.text_content() == PLANTED_REPLY
    assert tab.page.evaluate("window.pwned") is None
    tab.page.fill("#search", "window.pwned")
    tab.ready("rejects?q=window.pwned&filter=parse")
    assert tab.count(".reject") == 1


def test_thumbnail_opens_the_full_page(tab, dataset):
    tab.open(dataset["url"], "samples")
    zoom = tab.page.locator("#zoom")
    assert zoom.is_hidden()
    thumb = tab.page.locator(".thumb").first
    full = thumb.get_attribute("data-full")
    assert full != thumb.get_attribute("src")
    thumb.click()
    assert zoom.is_visible()
    assert tab.page.get_attribute("#zoom img", "src") == full
    tab.page.wait_for_function("() => document.querySelector('#zoom img').naturalWidth > 0")
    tab.page.keyboard.press("Escape")
    assert zoom.is_hidden()
    thumb.click()
    assert zoom.is_visible()
    zoom.click()
    assert zoom.is_hidden()
    thumb.click()
    assert zoom.is_visible()
    tab.go("overview")  # moving to another page closes it
    assert zoom.is_hidden()


def test_data_text_is_never_markup(tab, dataset):
    tab.open(dataset["url"], "samples")
    answers = tab.page.locator(".pair .answer")
    assert PLANTED in answers.all_text_contents()
    assert tab.page.evaluate("window.pwned") is None
    assert tab.count(".pair .answer b") == 0
    assert tab.count("#view script") == 0
    # The data files carry no "<" at all.
    for path in (dataset["site"] / "data").glob("*.js"):
        assert "<" not in path.read_text(), path.name


# ---------------------------------------------------------------- 10,000 samples


def tiny_png(label: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 32), (label * 40 % 256, 200, 255)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_synthetic_output(out_dir: Path, n: int) -> None:
    """A finished output folder of `n` samples in the shard layout (SAMPLE_SCHEMA), written
    with pyarrow; 50 documents of 2 pages share their tiny page images."""
    images = [{"bytes": tiny_png(i), "path": None} for i in range(4)]
    rows = []
    for i in range(n):
        doc = f"doc{i % 50:04d}"
        rows.append(
            {
                "id": f"unit{i:06d}",
                "doc_id": doc,
                "pages": [0, 1],
                "images": images[(i % 2) * 2 : (i % 2) * 2 + 2],
                "texts": [
                    {
                        "user": f"What does sample {i} say about item {k}?",
                        "assistant": f"Item {k} of sample {i} is {i * 3 + k}.",
                        "source": f"docs/{doc}.pdf#pages=1-2",
                    }
                    for k in range(2)
                ],
                "page_meta": [
                    {"page": p, "text_source": "layer", "ocr_score": None, "duplicate_of": None}
                    for p in (0, 1)
                ],
                "qa_meta": [
                    {
                        "qa_id": f"unit{i:06d}-{k}",
                        "prompt_id": "synthetic/coverage",
                        "model": "none",
                        "rationale": None,
                        "evidence_pages": [k + 1],
                        "question_type": "extractive",
                        "scores": [],
                        "ratings": [],
                        "rating_min": None,
                    }
                    for k in range(2)
                ],
            }
        )
    (out_dir / "data").mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA),
        out_dir / "data" / "train-00000-of-00001.parquet",
    )
    counts = {
        "documents": 50,
        "pages": 100,
        "units": n,
        "units_with_samples": n,
        "pairs_generated": 2 * n,
        "pairs_kept": 2 * n,
        "pairs_rejected": 0,
    }
    manifest = {"recipe_name": "synthetic", "counts": counts, "inputs": []}
    (out_dir / "manifest.json").write_text(json.dumps(manifest))


# Clicks `selector` in the page and waits for `route` to render and the next frame to paint;
# the seconds that took.
TIMED_CLICK = """async ([selector, route, timeoutMs]) => {
    const view = document.getElementById("view");
    const done = () => view.getAttribute("data-ready") === route
        && !view.classList.contains("loading");
    const started = performance.now();
    document.querySelector(selector).click();
    await new Promise((resolve, reject) => {
        if (done()) return resolve();
        const observer = new MutationObserver(() => {
            if (done()) { observer.disconnect(); resolve(); }
        });
        observer.observe(view, { attributes: true });
        setTimeout(() => reject(new Error("no " + route + " after " + timeoutMs + " ms")), timeoutMs);
    });
    await new Promise(resolve => requestAnimationFrame(() => setTimeout(resolve, 0)));
    return (performance.now() - started) / 1000;
}"""


def record_timings(figures: dict) -> None:
    """Print the figures, and write them where a benchmark run wants them (CURATION_BENCH_OUT)."""
    figures = {"samples": SYNTHETIC_SAMPLES, **{k: round(v, 3) for k, v in figures.items()}}
    print("dataset browser:", json.dumps(figures))
    target = os.environ.get("CURATION_BENCH_OUT")
    if target:
        Path(target).write_text(json.dumps(figures, indent=1) + "\n")


def test_ten_thousand_samples_page_fast(tab, tmp_path):
    out = tmp_path / "synthetic"
    write_synthetic_output(out, SYNTHETIC_SAMPLES)
    started = time.perf_counter()
    overview = build_site(out, tmp_path / "site")
    build = time.perf_counter() - started
    assert overview["samples"]["total"] == SYNTHETIC_SAMPLES
    assert overview["samples"]["chunks"] == SYNTHETIC_SAMPLES // 100
    url = (tmp_path / "site" / "index.html").as_uri()

    # The first page: from navigation to the rendered #/samples.
    started = time.perf_counter()
    tab.open(url, "samples")
    first = time.perf_counter() - started
    assert tab.count(".sample") == 10
    assert tab.page.text_content("#page-info") == "page 1 of 1000"
    loaded = "() => [...document.scripts].filter(s => s.src.includes('/data/samples-')).length"
    assert tab.page.evaluate(loaded) == 1  # chunks load on demand

    # Next page, 20 clicks: chunk 0 and then chunk 1 (loaded on the way). Timed in the page,
    # from the click to the first frame painted after the page rendered; and as driven from
    # here (Playwright's round trips included).
    clicks, driven = [], []
    for n in range(2, 22):
        started = time.perf_counter()
        clicks.append(
            tab.page.evaluate(TIMED_CLICK, ["button#next", f"samples?page={n}", READY_MS])
        )
        driven.append(time.perf_counter() - started)
    assert tab.page.locator(".sample").first.get_attribute("data-id") == "unit000200"
    p95, driven_p95 = (
        statistics.quantiles(t, n=20, method="inclusive")[18] for t in (clicks, driven)
    )
    median = statistics.median(clicks)
    assert tab.page.evaluate(loaded) == 3  # chunk 2 is prefetched on its chunk's last page
    tab.page.click("button#prev")
    tab.ready("samples?page=20")

    # A search over all 100 chunks, progressively loaded (and saying so).
    tab.page.evaluate(
        """() => {
            window.statuses = [];
            const status = document.getElementById("list-status");
            new MutationObserver(() => window.statuses.push(status.textContent))
                .observe(status, { childList: true, characterData: true, subtree: true });
        }"""
    )
    started = time.perf_counter()
    tab.page.fill("#search", "sample 9999 say")
    tab.ready("samples?q=sample+9999+say")
    search = time.perf_counter() - started  # 250 ms of it: the search box's debounce
    record_timings(
        {
            "build_site_s": build,
            "first_page_s": first,
            "next_page_p95_s": p95,
            "next_page_median_s": median,
            "next_page_p95_driven_s": driven_p95,
            "search_10k_s": search,
        }
    )
    assert tab.page.locator(".sample").evaluate_all("s => s.map(e => e.dataset.id)") == [
        "unit009999"
    ]
    statuses = tab.page.evaluate("window.statuses")
    assert any(re.fullmatch(r"searching \d+/100 chunks", text) for text in statuses), statuses
    assert statuses[-1] == "1 of 10,000 samples match"

    # A sample's own page, found by scanning the chunks.
    tab.go("sample/unit009950")
    assert tab.page.locator(".sample").get_attribute("data-id") == "unit009950"

    assert first <= FIRST_PAGE_S, f"first page in {first:.2f} s (goal {FIRST_PAGE_S} s)"
    assert p95 <= NEXT_PAGE_P95_S, f"next page p95 {p95:.3f} s (goal {NEXT_PAGE_P95_S} s)"
