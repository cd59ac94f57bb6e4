"""The OCR quality benchmark's metrics (benchmarks/bench_ocr_quality.py), on known texts."""

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import pymupdf
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_ocr_quality.py"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH.parent))  # its sibling debian_docs, as when run as a script
    spec = importlib.util.spec_from_file_location("bench_ocr_quality", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]
    sys.path.remove(str(BENCH.parent))


def test_normalise_spells_out_ligatures_quotes_case_and_joins_hyphenation(bench):
    assert bench.normalise(
        "The \ufb01rst \u201cQuote\u201d \u2013 hyphen-\nation, well-\nKnown"
    ) == ('the first "quote" - hyphenation, well-\nknown')
    assert bench.words("Staff\u2019s \ufb01le: x2 = 3_4") == ["staff", "s", "file", "x2", "3", "4"]
    assert bench.normalise("Objects. . . . . . . 2\nWait... then") == "objects 2\nwait... then"


def test_multiset_scores_count_shared_items_once_each(bench):
    reference, found = Counter("aabc"), Counter("abbd")
    assert bench.multiset_scores(reference, found) == (2, 4, 4)  # a and b shared
    assert bench.char_counts("Ab c") == Counter({"a": 1, "b": 1, "c": 1})


def test_kendall_tau_of_orders(bench):
    assert bench.kendall_tau([0, 1, 2, 3]) == 1.0
    assert bench.kendall_tau([3, 2, 1, 0]) == -1.0
    assert bench.kendall_tau([1, 0, 2, 3]) == pytest.approx(1 - 2 / 6)
    assert bench.kendall_tau([5]) is None


def test_match_lines_pairs_similar_lines_one_to_one(bench):
    reference = ["Results of the survey", "Discussion follows here", "Results of the survey"]
    found = ["Discussion fol1ows here", "Resu1ts of the survey", "noise"]
    assert bench.match_lines(reference, found) == [(0, 1), (1, 0)]


def test_page_scores_split_recognition_from_reading_order(bench):
    doc = pymupdf.open()
    page = doc.new_page(width=400, height=200)
    page.insert_text((20, 40), "Alpha beta gamma delta", fontsize=11)
    page.insert_text((20, 80), "Epsilon zeta eta theta", fontsize=11)
    page.insert_text((20, 120), "Hyphen-", fontsize=11)
    page.insert_text((20, 140), "ated", fontsize=11)
    page.insert_text((20, 180), "7", fontsize=6)  # a page number: not body text
    ref = bench.reference_of(page)
    lines = ["Alpha beta gamma delta", "Epsilon zeta eta theta", "Hyphen-", "ated", "7"]
    assert ref.lines == lines
    body = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "hyphenated"]
    assert ref.body_words == body
    # Every word read, two lines swapped: recognition is perfect, the reading order is not.
    swapped = [lines[1], lines[0], *lines[2:]]
    scores = bench.page_scores(ref, "\n".join(swapped), swapped, swapped)
    assert scores["chars"] == (49, 49, 49) and scores["words"] == (10, 10, 10)
    assert scores["body"] == (9, 9)
    assert scores["order"] == pytest.approx(1 - 2 / 6) and scores["order_matched"] == 4
    # A word misread: recall and precision drop, the order is right.
    misread = "Alpha beta gamma delta\nEpsi1on zeta eta theta\nHyphen-\nated\n7"
    scores = bench.page_scores(ref, misread, misread.split("\n"), misread.split("\n"))
    assert scores["words"] == (9, 10, 10) and scores["body"] == (8, 9)
    assert scores["order"] == 1.0
