"""Page dedup across documents: signatures of real renders, the banded search for near hashes,
no false positive on the sample corpus, and a real run that skips the units of repeated pages."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pymupdf
import pytest
from conftest import LENIENT_CHAIN, SAMPLES
from output_fixtures import document_units, outcome

from curation.config import IngestConfig, PageDedupConfig, UnitsConfig, load_recipe
from curation.hamming import band_layout
from curation.ingest import expand_inputs, ingest_document
from curation.ingest.pagedup import (
    EMPTY_TEXT,
    PageSignature,
    find_duplicates,
    mark_unit,
    page_signature,
    settings_key,
    signatures_of,
)
from curation.output.card import write_card
from curation.output.shards import DatasetWriter
from curation.schema import Outcome, Unit

LICENCE = (
    "This document is released under the Creative Commons Attribution 4.0 licence. You may "
    "share and adapt it for any purpose, provided you give appropriate credit to the authors, "
    "link to the licence and say whether changes were made."
)
COVER = "Northwind Water Authority\nTechnical Publications Series"
LOGO = (72, 72, 272, 152)


def make_doc(path: Path, pages: list[tuple[str, tuple | None]]) -> Path:
    """A born-digital PDF: per page a text block and, optionally, a filled box (a logo). Saved
    with no_new_id: the same pages give the same bytes (and doc_id) on every run."""
    doc = pymupdf.open()
    for text, box in pages:
        page = doc.new_page(width=612, height=792)
        page.insert_textbox(pymupdf.Rect(72, 200, 540, 700), text, fontsize=12)
        if box:
            page.draw_rect(pymupdf.Rect(*box), color=(0.1, 0.2, 0.6), fill=(0.1, 0.2, 0.6))
    doc.save(path, no_new_id=True)
    doc.close()
    return path


def content(topic: str) -> str:
    return f"Section on {topic}. " + " ".join(
        f"The {topic} figure for year {year} was {year % 97} units." for year in range(2001, 2011)
    )


def sig(page: int, phash: int, text: str = "t", pixels: str | None = None, textual=True):
    return PageSignature(page, phash, text, pixels or f"px-{page}-{phash}", textual)


def flip(value: int, *bits: int) -> int:
    for bit in bits:
        value ^= 1 << bit
    return value


# ---- the search -------------------------------------------------------------------------------


def test_a_near_page_of_a_later_document_points_at_the_earlier_one():
    base = 0x0123_4567_89AB_CDEF
    docs = [
        ("a", [sig(0, base, "cover"), sig(1, 0xFFFF, "body a")]),
        ("b", [sig(0, flip(base, 1, 30, 60), "cover"), sig(1, 0xFFFF, "body b")]),
    ]
    assert find_duplicates(docs, 4) == [{}, {0: "a:0"}]


def test_the_same_image_with_other_text_is_not_a_duplicate():
    docs = [("a", [sig(0, 42, "minutes of 3 May")]), ("b", [sig(0, 42, "minutes of 4 May")])]
    assert find_duplicates(docs, 4) == [{}, {}]


def test_a_page_repeated_within_one_document_and_the_first_original_wins():
    base = 0xDEAD_BEEF_0000_FFFF
    docs = [
        ("a", [sig(0, base, "licence"), sig(1, 7, "body"), sig(2, flip(base, 5), "licence")]),
        ("b", [sig(0, flip(base, 9), "licence")]),
    ]
    # b:0 is near both a:0 and a:2; a:2 is itself a duplicate: b:0 points at the original.
    assert find_duplicates(docs, 4) == [{2: "a:0"}, {0: "a:0"}]


def test_banding_finds_every_pair_within_max_distance_and_none_beyond():
    base = random.Random(1).getrandbits(64)
    for distance in range(9):
        for trial in range(20):
            bits = random.Random(distance * 100 + trial).sample(range(64), distance)
            docs = [("a", [sig(0, base, "x")]), ("b", [sig(0, flip(base, *bits), "x")])]
            assert find_duplicates(docs, 4)[1] == ({0: "a:0"} if distance <= 4 else {}), bits
    # Four flipped bits, one in each of four of the five bands: one band is still whole.
    starts = [lo for lo, _ in band_layout(64, 4)]
    spread = flip(base, *(lo + 1 for lo in starts[:4]))
    assert find_duplicates([("a", [sig(0, base)]), ("b", [sig(0, spread)])], 4)[1] == {0: "a:0"}
    assert find_duplicates([("a", [sig(0, base)]), ("b", [sig(0, spread)])], 3)[1] == {}


def brute_force(docs: list, max_distance: int) -> list[dict[int, str]]:
    """The rule without banding: the first earlier original page with the same text and a
    near hash (both textual) or the same pixels."""
    originals: list[tuple[str, PageSignature]] = []
    found = []
    for doc_id, signatures in docs:
        repeats = {}
        for s in signatures:
            match = next(
                (
                    f"{d}:{o.page}"
                    for d, o in originals
                    if o.text == s.text
                    and (
                        o.pixels == s.pixels
                        or (
                            o.textual
                            and s.textual
                            and (o.phash ^ s.phash).bit_count() <= max_distance
                        )
                    )
                ),
                None,
            )
            if match:
                repeats[s.page] = match
            else:
                originals.append((doc_id, s))
        found.append(repeats)
    return found


def test_banded_search_agrees_with_comparing_every_pair():
    """Texts shared by many pages (searched by band) and by a few (compared one by one)."""
    rng = random.Random(7)
    centres = [rng.getrandbits(64) for _ in range(6)]
    texts = ["a", "b", "c", *(f"rare{i}" for i in range(30))]
    docs = []
    for d in range(40):
        pages = []
        for p in range(6):
            near = flip(rng.choice(centres), *rng.sample(range(64), rng.randint(0, 7)))
            pixels = rng.choice(["p1", "p2", f"u{d}-{p}"])
            pages.append(sig(p, near, rng.choice(texts), pixels, rng.random() > 0.2))
        docs.append((f"d{d}", pages))
    for distance in (0, 2, 4, 6):
        assert find_duplicates(docs, distance) == brute_force(docs, distance)
    assert sum(map(len, find_duplicates(docs, 4))) > 20  # the case is not vacuous


def test_pages_without_usable_text_match_only_identical_pixels():
    scans = [
        ("a", [sig(0, 1000, EMPTY_TEXT, "scan-a", textual=False)]),
        ("b", [sig(0, 1001, EMPTY_TEXT, "scan-b", textual=False)]),  # one bit apart
        ("c", [sig(0, 1000, EMPTY_TEXT, "scan-a", textual=False)]),  # the same scan again
    ]
    assert find_duplicates(scans, 4) == [{}, {}, {0: "a:0"}]


def test_mark_unit_marks_pages_and_skips_a_unit_of_repeats_only():
    unit = {
        "unit_id": "b:0-1",
        "pages": [0, 1],
        "error_code": None,
        "page_dups": [],
        "skipped": None,
    }
    assert mark_unit(unit, None) is unit and mark_unit(unit, {5: "a:1"}) is unit
    half = mark_unit(unit, {0: "a:0"})
    assert half["page_dups"] == ["a:0", None] and half["skipped"] is None
    both = mark_unit(unit, {0: "a:0", 1: "a:2"})
    assert both["page_dups"] == ["a:0", "a:2"]
    assert both["skipped"] == "duplicate_pages: every page repeats an earlier one (a:0, a:2)"
    error = {**unit, "pages": [], "error_code": "corrupt"}
    assert mark_unit(error, {0: "a:0"}) is error


# ---- signatures of real pages -----------------------------------------------------------------


def test_real_renders_near_and_exact_copies_and_text(tmp_path):
    first = make_doc(tmp_path / "a.pdf", [(LICENCE, LOGO), ("", None), ("", LOGO)])
    # The licence with its logo moved 6 points, and re-flowed in capitals (the same words).
    moved = (LOGO[0] + 6, LOGO[1], LOGO[2] + 6, LOGO[3] + 6)
    second = make_doc(tmp_path / "b.pdf", [(LICENCE.upper(), moved), ("", None), ("", moved)])
    (_, a), (_, b) = signatures_of(first, IngestConfig()), signatures_of(second, IngestConfig())
    assert [s.textual for s in a] == [True, False, False]  # no text layer: matched by pixels
    assert a[0].text == b[0].text and a[0].pixels != b[0].pixels
    assert 0 < (a[0].phash ^ b[0].phash).bit_count() <= 4
    assert a[1].pixels == b[1].pixels  # two blank pages
    # The logo alone, moved: the same hash even, but no text to go by: not a match.
    assert (a[2].phash ^ b[2].phash).bit_count() <= 4 and a[2].pixels != b[2].pixels
    assert find_duplicates([("a", a), ("b", b)], 4) == [{}, {0: "a:0", 1: "a:1"}]


def test_a_signature_reads_encoded_bytes_or_an_image_and_normalizes_the_text(tmp_path):
    pdf = make_doc(tmp_path / "a.pdf", [(LICENCE, LOGO)])
    with pymupdf.open(pdf) as doc:
        pixmap = doc[0].get_pixmap(dpi=48)
    from_bytes = page_signature(pixmap.tobytes("png"), f"  {LICENCE}\n")
    from_image = page_signature(pixmap.pil_image(), " ".join(LICENCE.upper().split()))
    assert from_bytes == from_image and from_bytes.textual
    assert 0 <= from_bytes.phash < 2**64
    blank = page_signature(pixmap.pil_image(), " \n ")
    assert blank.text == EMPTY_TEXT and not blank.textual


def test_signatures_are_cached_by_content_and_settings(tmp_path, monkeypatch):
    pdf = make_doc(tmp_path / "a.pdf", [(LICENCE, LOGO), (COVER, None)])
    cache = tmp_path / "cache"
    doc_id, first = signatures_of(pdf, IngestConfig(), str(cache))
    key = settings_key(IngestConfig())
    assert (cache / f"{doc_id}-{key}.json").is_file()

    def no_render(*args, **kwargs):
        raise AssertionError("rendered again")

    monkeypatch.setattr("curation.ingest.pagedup.document_signatures", no_render)
    assert signatures_of(pdf, IngestConfig(), str(cache)) == (doc_id, first)
    # max_distance and the switch do not change a signature; the pre-pass resolution does.
    looser = IngestConfig(page_dedup=PageDedupConfig(enabled=True, max_distance=8))
    assert settings_key(looser) == key
    assert settings_key(IngestConfig(page_dedup=PageDedupConfig(dpi=72))) != key
    assert settings_key(IngestConfig(ocr="always")) != key


def test_ingest_marks_the_units_of_a_document():
    pdf = SAMPLES / "lighthouse_history.pdf"
    units = UnitsConfig(pages_per_unit=2)
    rows = list(ingest_document(pdf, IngestConfig(dpi=36, ocr="never"), units, None, {2: "x:9"}))
    assert [r["unit_id"][-3:] for r in rows] == ["0-1", "2-2"]
    assert not any(rows[0]["page_dups"]) and rows[0]["skipped"] is None
    assert rows[1]["page_dups"] == ["x:9"]
    assert rows[1]["skipped"] == "duplicate_pages: every page repeats an earlier one (x:9)"


def test_no_page_of_the_sample_corpus_is_taken_for_a_duplicate():
    """Every page of every sample document and deck, in input order: no two are the same page,
    so none may be marked (the nearest two images of different pages are 6 bits apart, text
    aside: the text hash is what keeps template pages apart)."""
    inputs = expand_inputs([str(SAMPLES / "*")]).files
    documents = [signatures_of(path, IngestConfig()) for path in inputs]
    assert len(documents) >= 6 and sum(len(pages) for _, pages in documents) >= 20
    assert find_duplicates(documents, PageDedupConfig().max_distance) == [{}] * len(documents)
    # And still none at twice the default distance.
    assert find_duplicates(documents, 2 * PageDedupConfig().max_distance) == [{}] * len(documents)


def test_the_writer_counts_skipped_units_and_repeated_pages_and_the_card_shows_them(tmp_path):
    first = document_units("aaaa1111", "docs/a.pdf", n_pages=2, pages_per_unit=1)
    second = document_units("bbbb2222", "docs/b.pdf", n_pages=4, pages_per_unit=2)
    dups = {0: "aaaa1111:0", 2: "aaaa1111:1", 3: "aaaa1111:1"}
    mixed, skipped = (mark_unit(unit, dups) for unit in second)
    assert skipped["skipped"] and not mixed["skipped"]
    writer = DatasetWriter(tmp_path, rows_per_shard=10, inputs=["docs/a.pdf", "docs/b.pdf"])
    kept = outcome(first[0], [("Q?", "A.", True), ("Q2?", "A2.", True)])
    kept.reply.pairs[0].question_type = "extractive"  # the second has no type: not counted
    writer.add(kept)
    writer.add(outcome(first[1], [("Q?", "A.", False)]))
    writer.add(outcome(mixed, [("Which?", "This one.", True)]))
    sample = writer.samples.pending[-1]
    assert [m["duplicate_of"] for m in sample["page_meta"]] == ["aaaa1111:0", None]
    writer.add(Outcome(Unit.from_row(skipped)))  # what generation makes of it: no request, no pairs
    manifest = writer.close({"recipe_name": "dups", "recipe": {}})
    counts = manifest["counts"]
    assert counts["units"] == 4 and counts["units_with_samples"] == 2
    assert counts["units_skipped"] == {"duplicate_pages": 1}
    assert counts["units_by_layout"] == {"window": 4}
    assert counts["pages_duplicate"] == 3
    assert counts["errors_by_code"] == {} and counts["rejected_by_filter"] == {"rule": 1}
    assert [r["units"] for r in manifest["inputs"]] == [2, 2]

    write_card(tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert "| units skipped: every page repeats an earlier one | 1 |" in card
    assert "| pages repeating an earlier page | 3 |" in card
    assert "| extractive | 1 |" in card and "| window | 4 |" in card
    assert "was skipped before generation" in card


# ---- a real run -------------------------------------------------------------------------------

RECIPE = """
name: pagedup
inputs: ["{inputs}/*.pdf"]
ingest: {{dpi: 60, ocr: never, page_dedup: {{enabled: true}}}}
units: {{pages_per_unit: 2}}
generate: {{engine: openai, base_url: "{base_url}", pairs_per_unit: 1, max_tokens: 64, seed: 3, cache_dir: "{tmp}/cache/responses"}}
filters: {tmp}/lenient.yaml
output: {{dir: "{tmp}/out"}}
"""


@pytest.mark.e2e
def test_a_run_skips_the_units_of_repeated_pages_without_asking_the_model(tmp_path, ray_local):
    """A real run (Ray, ingest, the pre-pass) whose model is a scripted OpenAI-compatible server
    (a FAKE standing in for vLLM: tests/scripted_server.py) that answers every unit alike."""
    from scripted_server import scripted_server

    from curation.run import run_recipe

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    moved = (LOGO[0] + 6, LOGO[1], LOGO[2] + 6, LOGO[3] + 6)
    make_doc(inputs / "a.pdf", [(COVER, LOGO), (content("rainfall"), None), (LICENCE, LOGO)])
    # b: the cover and content of its own, then the licence (its logo moved), twice.
    make_doc(
        inputs / "b.pdf",
        [(COVER, LOGO), (content("pipes"), None), (LICENCE, moved), (LICENCE, moved)],
    )
    (tmp_path / "lenient.yaml").write_text(LENIENT_CHAIN)
    reply = "Q1: What does this page describe?\nA1: The network and its yearly report."
    with scripted_server(lambda messages: reply) as server:
        recipe = RECIPE.format(inputs=inputs, tmp=tmp_path, base_url=server.base_url)
        (tmp_path / "recipe.yaml").write_text(recipe)
        manifest = run_recipe(load_recipe(tmp_path / "recipe.yaml"))
        assert len(server.requests) == 3  # a:0-1, a:2, b:0-1; nothing for b:2-3

    a_id, b_id = (r["doc_id"] for r in manifest["inputs"])
    counts = manifest["counts"]
    assert counts["units"] == 4 and counts["units_by_layout"] == {"window": 4}
    assert counts["units_skipped"] == {"duplicate_pages": 1}  # b:2-3, both licence pages
    assert counts["pages_duplicate"] == 3  # b:0 (cover), b:2 and b:3 (licence)
    sent = (tmp_path / "cache" / "responses" / "sent.log").read_text().split()
    assert len(sent) == 3  # a:0-1, a:2, b:0-1; nothing for b:2-3
    assert list((tmp_path / "cache" / "pagedup").glob(f"{b_id}-*.json"))  # for the next run
    rows = pq.read_table(tmp_path / "out" / "data").to_pylist()
    dups = {row["id"]: [m["duplicate_of"] for m in row["page_meta"]] for row in rows}
    assert f"{b_id}:2-3" not in dups
    expected = {
        f"{a_id}:0-1": [None, None],
        f"{a_id}:2-2": [None],
        f"{b_id}:0-1": [f"{a_id}:0", None],
    }
    assert all(dups[unit] == expected[unit] for unit in dups)
    assert f"{b_id}:0-1" in dups  # kept, with its first page named as a repeat
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| units skipped: every page repeats an earlier one | 1 |" in card
    assert "| pages repeating an earlier page | 3 |" in card
    assert "| window | 4 |" in card
    assert json.loads((tmp_path / "out" / "report" / "stats.json").read_text())["funnel"][
        "units_skipped"
    ] == {"duplicate_pages": 1}
