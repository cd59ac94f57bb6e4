"""The decontaminate filter: benchmark questions (13-word n-grams, short ones whole with their
answer) and benchmark images (256-bit perceptual hashes) found in pairs and units, the index
cached on disk, and configuration errors that name the file and the field."""

import io
import json
import random
from itertools import combinations
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pymupdf
import pytest
from pairs import filter_rows, pair_in
from PIL import Image, ImageEnhance
from pydantic import ValidationError
from realistic_run import write_documents

from curation import hamming
from curation.config import ConfigError
from curation.filters import FilterChain, decontam, decontam_hashes
from curation.filters.chain import load_chain
from curation.filters.decontam import DecontamFilter
from curation.filters.decontam_index import DecontamIndex
from curation.schema import Pair

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"

LONG_Q = (
    "What is the total revenue reported by the northern division in the fiscal year 2019 "
    "annual report of the company?"
)
DOCVQA = [
    {"questionId": 1234, "question": LONG_Q, "answer": ["12 million"]},
    {"questionId": 55, "question": "What is the date of the meeting?", "answer": ["March 3, 1975"]},
    {"questionId": 56, "question": "Who signed?", "answer": ["Ada"]},  # under min_item_words
    {"questionId": 57, "question": "Which station pumped most water?", "answer": None},
]
CHARTQA = {
    "question": ["How many megalitres did the Northgate station deliver?", "What is the x label?"],
    "answer": ["1,250", "Year"],
    "image": ["0.png", "1.png"],
}


def render(pdf: str, page: int, dpi: int = 40) -> Image.Image:
    with pymupdf.open(SAMPLES / pdf) as doc:
        png = doc[page].get_pixmap(dpi=dpi).tobytes("png")
    return Image.open(io.BytesIO(png)).convert("RGB")


def encoded(image: Image.Image, fmt: str = "PNG", quality: int = 80) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, quality=quality) if fmt == "JPEG" else image.save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def pages() -> dict[str, Image.Image]:
    return {
        "report": render("water_utility_annual_report.pdf", 0),
        "minutes": render("city_council_minutes.pdf", 1),
        "lighthouse": render("lighthouse_history.pdf", 2),
    }


@pytest.fixture
def bench(tmp_path, pages) -> Path:
    """docvqa.jsonl, chartqa.parquet and chartqa's image folder (two rendered pages)."""
    (tmp_path / "docvqa.jsonl").write_text("\n".join(json.dumps(r) for r in DOCVQA) + "\n")
    pq.write_table(pa.table(CHARTQA), tmp_path / "chartqa.parquet")
    folder = tmp_path / "chartqa_images"
    folder.mkdir()
    pages["report"].save(folder / "0.png")
    pages["minutes"].save(folder / "1.png")
    return tmp_path


def make_filter(root: Path, **settings) -> DecontamFilter:
    benchmarks = [
        {"name": "docvqa", "path": str(root / "docvqa.jsonl")},
        {
            "name": "chartqa",
            "path": str(root / "chartqa.parquet"),
            "images": str(root / "chartqa_images"),
        },
    ]
    params = {"benchmarks": benchmarks, "cache_dir": str(root / "cache"), **settings}
    return DecontamFilter.model_validate(params)


def pair(question: str, answer: str = "An answer.", unit: str = "u", images=()) -> Pair:
    return pair_in(unit_id=unit, question=question, answer=answer, images=list(images))


def test_long_benchmark_question_is_caught_by_a_shared_13_gram(bench):
    flt = make_filter(bench)
    # Another case, punctuation and surrounding words; 13 consecutive words are the item's.
    planted = "Quick check -- the TOTAL revenue, reported by the Northern division in the fiscal"
    planted += " year 2019: how much was it?"
    decisions = flt.decide([pair(planted), pair("What is the total revenue in 2019?")])
    assert not decisions[0].passed
    assert decisions[0].reason.startswith("shares 13 words with docvqa item 1234: ")
    assert '"what is the total revenue reported by the northern' in decisions[0].reason
    assert decisions[1].passed  # 6 words of it are no match


def test_short_question_is_matched_whole_with_its_answer(bench):
    flt = make_filter(bench)
    decisions = flt.decide(
        [
            pair("WHAT is the date of the meeting??", "The meeting was held on march 3 1975."),
            pair("What is the date of the meeting?", "It was held in June."),
            pair("how many megalitres did the northgate station deliver", "It delivered 1250."),
            pair("Which station pumped most water, in the end?", "Northgate."),
            pair("Who signed?", "Ada"),
            pair("What is the date of the minutes?", "March 3, 1975"),
        ]
    )
    assert [d.passed for d in decisions] == [False, True, False, False, True, True]
    assert decisions[0].reason == (
        'holds docvqa item 55: "what is the date of the meeting" with its answer'
    )
    # parquet without an id column: the row number; "1,250" and "1250" are one word
    assert decisions[2].reason.startswith('holds chartqa item 0: "how many megalitres')
    # an item without an answer is matched on its question alone
    assert decisions[3].reason == 'holds docvqa item 57: "which station pumped most water"'


def test_short_item_answer_off_and_field_question(bench):
    loose = make_filter(bench, short_item_answer=False, min_item_words=2)
    decisions = loose.decide(
        [pair("What is the date of the meeting?", "June"), pair("Who signed?")]
    )
    assert [d.passed for d in decisions] == [False, False]
    assert "docvqa item 56" in decisions[1].reason
    # With `fields: question` a benchmark question written into the answer is not looked at.
    questions_only = make_filter(bench, fields="question")
    decisions = questions_only.decide([pair("What does it say?", LONG_Q), pair(LONG_Q)])
    assert [d.passed for d in decisions] == [True, False]
    assert not make_filter(bench).decide([pair("What does it say?", LONG_Q)])[0].passed


def test_unrelated_pairs_are_kept(bench, pages):
    flt = make_filter(bench)
    unrelated = [
        pair("Who chairs the board of the utility?", "Elena Marsh chairs the board."),
        pair("What was the average water pressure?", "It was 3.5 bar across the network."),
        pair(
            "When was the lighthouse built?",
            "In 1894.",
            unit="l",
            images=[encoded(pages["lighthouse"])],
        ),
        pair("", ""),
    ]
    assert all(d.passed for d in flt.decide(unrelated))


def test_a_near_copy_of_a_benchmark_image_drops_its_whole_unit(bench, pages):
    flt = make_filter(bench)
    report = pages["report"]
    smaller_jpeg = encoded(report.resize((report.width * 2 // 3, report.height * 2 // 3)), "JPEG")
    brighter = encoded(ImageEnhance.Brightness(pages["minutes"]).enhance(1.08))
    other = encoded(pages["lighthouse"])
    batch = [
        pair("Who chairs the board?", "Elena Marsh.", unit="a", images=[other, smaller_jpeg]),
        pair("How many households?", "48,200.", unit="a", images=[other, smaller_jpeg]),
        pair("What did the council decide?", "A new budget.", unit="b", images=[brighter]),
        pair("When was the lighthouse built?", "In 1894.", unit="c", images=[other, b"not png"]),
    ]
    decisions = flt.decide(batch)
    assert [d.passed for d in decisions] == [False, False, False, True]
    assert decisions[0].reason.startswith("page image 2 is chartqa image 0.png (item 0) (")
    assert (
        decisions[0].reason.endswith(" of 256 bits apart)")
        and decisions[0].reason == decisions[1].reason
    )
    assert "chartqa image 1.png (item 1)" in decisions[2].reason
    # With no tolerance only identical hashes match: the brightened page no longer does.
    exact = make_filter(bench, image_distance=0).decide([batch[2]])
    bits = int(decisions[2].reason.split("(")[-1].split()[0])
    assert exact[0].passed == (bits > 0)


def test_page_hashes_are_computed_once_per_unit(bench, pages, monkeypatch):
    flt = make_filter(bench)
    flt.index()
    seen = []
    real = decontam.bytes_hash
    monkeypatch.setattr(decontam, "bytes_hash", lambda data: seen.append(data) or real(data))
    image = encoded(pages["lighthouse"])
    flt.decide([pair(f"Question {i}?", unit="u", images=[image, image]) for i in range(5)])
    assert len(seen) == 2


def test_the_index_is_built_once_and_loaded_from_its_cache_file(bench, monkeypatch):
    batch = [pair(LONG_Q), pair("What is the date of the meeting?", "March 3, 1975"), pair("Hi?")]
    first = make_filter(bench)
    expected = first.decide(batch)
    assert first.source == "built"
    files = list((bench / "cache").glob("*.npz"))
    assert len(files) == 1 and files[0].stat().st_size > 0
    assert make_filter(bench).decide(batch) == expected  # same process: from memory
    # A new worker process: nothing in memory, and reading the benchmarks is not allowed.
    monkeypatch.setattr(decontam, "_MEMO", {})
    monkeypatch.setattr(decontam, "build_index", lambda *a: pytest.fail("index rebuilt"))
    second = make_filter(bench)
    assert second.decide(batch) == expected
    assert second.source == "cache file"
    monkeypatch.undo()
    # A changed benchmark file is another index, in another file.
    with open(bench / "docvqa.jsonl", "a") as fh:
        fh.write(json.dumps({"question": "Where is the Hollow Creek plant?", "answer": "x"}) + "\n")
    third = make_filter(bench)
    third.decide(batch)
    assert third.source == "built" and len(list((bench / "cache").glob("*.npz"))) == 2


def test_settings_that_shape_the_index_are_in_its_key(bench):
    make_filter(bench).decide([pair("Hi?")])
    make_filter(bench, image_distance=2, fields="question").decide([pair("Hi?")])
    assert len(list((bench / "cache").glob("*.npz"))) == 1  # lookup settings: same index
    make_filter(bench, ngram=8).decide([pair("Hi?")])
    assert len(list((bench / "cache").glob("*.npz"))) == 2


def write_chain(tmp_path: Path, entry: dict) -> Path:
    path = tmp_path / "chain.yaml"
    path.write_text(json.dumps({"name": "c", "filters": [{"type": "decontaminate", **entry}]}))
    return path


def test_bad_configuration_names_the_file_and_the_field(bench, tmp_path):
    missing = write_chain(tmp_path, {"benchmarks": [{"name": "b", "path": "nope/docvqa.jsonl"}]})
    with pytest.raises(
        ConfigError,
        match=r"chain\.yaml: field 'filters\.0\.benchmarks\.0\.path'.*nope/docvqa\.jsonl",
    ):
        FilterChain.load(missing)
    folder = write_chain(tmp_path, {"benchmarks": [{"name": "b", "images": "nope/images"}]})
    with pytest.raises(ConfigError, match=r"'filters\.0\.benchmarks\.0\.images'.*nope/images"):
        FilterChain.load(folder)
    with pytest.raises(ConfigError, match="give a `path`, an `images` folder or both"):
        FilterChain.load(write_chain(tmp_path, {"benchmarks": [{"name": "b"}]}))
    # A missing column shows when the file is read: at the first batch.
    wrong = make_filter(
        bench, benchmarks=[{"name": "d", "path": str(bench / "docvqa.jsonl"), "question": "query"}]
    )
    with pytest.raises(ConfigError, match=r"docvqa\.jsonl: field 'question': no column 'query'"):
        wrong.decide([pair("Hi?")])
    no_answer = [{"name": "c", "path": str(bench / "chartqa.parquet"), "answer": "answers"}]
    with pytest.raises(ConfigError, match=r"chartqa\.parquet: field 'answer': no column 'answers'"):
        make_filter(bench, benchmarks=no_answer).decide([pair("Hi?")])
    broken = bench / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(ConfigError, match=r"broken\.parquet: cannot read as parquet"):
        make_filter(bench, benchmarks=[{"name": "x", "path": str(broken)}]).decide([pair("Hi?")])
    bad_line = bench / "bad.jsonl"
    bad_line.write_text('{"question": "ok"}\n{"question": \n')
    with pytest.raises(ConfigError, match=r"bad\.jsonl: line 2: not JSON"):
        make_filter(bench, benchmarks=[{"name": "x", "path": str(bad_line)}]).decide([pair("Hi?")])


def test_hostile_benchmark_text_is_data(tmp_path):
    rows = [{"id": "{{7*7}}", "question": "{{ config }} __import__('os').system('x') \"; DROP"}]
    (tmp_path / "b.jsonl").write_text(json.dumps(rows[0]) + "\n")
    flt = DecontamFilter.model_validate(
        {
            "benchmarks": [{"name": "evil", "path": str(tmp_path / "b.jsonl"), "answer": None}],
            "cache_dir": str(tmp_path / "cache"),
        }
    )
    decision = flt.decide([pair("What does {{ Config }} __import__('os').system('x'); drop do?")])[
        0
    ]
    assert not decision.passed
    assert decision.reason == 'holds evil item {{7*7}}: "config import os system x drop"'


PAGE_TEXT = (
    "Riverside Water Utility, annual report 2023. The utility served 48,200 households. "
    "The Northgate pumping station delivered 1,250 megalitres in 2023, up from 1,180 megalitres "
    "in 2022. The board is chaired by Elena Marsh."
)


def test_a_chain_extending_the_default_runs_it_on_outcome_rows(bench, tmp_path, pages):
    entry = make_filter(bench).model_dump(exclude={"name"})
    chain_path = tmp_path / "decontam-chain.yaml"
    chain_path.write_text(
        json.dumps(
            {
                "name": "decontam",
                "extends": str(ROOT / "filters" / "default.yaml"),
                "filters": [{"type": "decontaminate", **entry}],
            }
        )
    )
    chain = load_chain(str(chain_path))
    assert chain.filters[-1].type == "decontaminate"

    def row(unit: str, questions: list[tuple[str, str]], image: Image.Image) -> dict:
        return {
            "unit_id": unit,
            "pages": [0],
            "texts": [PAGE_TEXT],
            "images": [encoded(image)],
            "pairs": [
                {
                    "qa_id": f"{unit}{i}",
                    "question": q,
                    "answer": a,
                    "rationale": None,
                    "evidence_pages": [],
                    "decisions": [],
                }
                for i, (q, a) in enumerate(questions)
            ],
        }

    clean = ("Who chairs the board of the utility?", "Elena Marsh chairs the board.")
    leaked = (
        "How many megalitres did the Northgate station deliver?",
        "The Northgate pumping station delivered 1,250 megalitres in 2023.",
    )
    outcomes = filter_rows(
        chain,
        [row("u1", [clean, leaked], pages["lighthouse"]), row("u2", [clean], pages["report"])],
    )
    first, second = outcomes[0]["pairs"]
    assert all(d["passed"] for d in first["decisions"])
    assert second["decisions"][-1]["filter"] == "decontaminate"
    assert not second["decisions"][-1]["passed"]
    assert "chartqa item 0" in second["decisions"][-1]["reason"]
    only = outcomes[1]["pairs"][0]["decisions"][-1]
    assert only["filter"] == "decontaminate" and not only["passed"]
    assert only["reason"].startswith("page image 1 is chartqa image 0.png")


def test_images_in_a_parquet_column_and_a_benchmark_of_images_only(tmp_path, pages):
    """A datasets Image column ({"bytes", "path"}) is hashed from its bytes; a benchmark may be
    a folder of images alone, each named by its file."""
    table = pa.table(
        {
            "question": ["What is shown?"],
            "answer": ["A report."],
            "image": [{"bytes": encoded(pages["report"]), "path": None}],
        }
    )
    pq.write_table(table, tmp_path / "infovqa.parquet")
    folder = tmp_path / "only_images"
    (folder / "sub").mkdir(parents=True)
    pages["minutes"].save(folder / "sub" / "m.webp")
    flt = DecontamFilter.model_validate(
        {
            "benchmarks": [
                {"name": "infovqa", "path": str(tmp_path / "infovqa.parquet"), "id": "question"},
                {"name": "slides", "images": str(folder)},
            ],
            "cache_dir": str(tmp_path / "cache"),
        }
    )
    report = encoded(pages["report"], "JPEG")
    minutes = encoded(pages["minutes"], "JPEG")
    decisions = flt.decide(
        [pair("Q?", unit="a", images=[report]), pair("Q?", unit="b", images=[minutes])]
    )
    assert decisions[0].reason.startswith("page image 1 is infovqa item What is shown?'s image (")
    assert decisions[1].reason.startswith("page image 1 is slides image sub/m.webp (")
    missing_id = [{"name": "d", "path": str(tmp_path / "infovqa.parquet"), "id": "qid"}]
    with pytest.raises(ConfigError, match=r"infovqa\.parquet: field 'id': no column 'qid'"):
        DecontamFilter(benchmarks=missing_id, cache_dir=str(tmp_path / "c2")).decide([pair("Q?")])


def random_index(rng: random.Random, n: int) -> DecontamIndex:
    words = np.array([rng.getrandbits(64) for _ in range(4 * n)], np.uint64).reshape(n, 4)
    return DecontamIndex({"image_hashes": words}, {"labels": [], "answers": {}, "image_labels": []})


def flipped(value: np.ndarray, bits: list[int]) -> np.ndarray:
    out = value.copy()
    for bit in bits:
        out[bit // 64] ^= np.uint64(1 << (bit % 64))
    return out


def test_lsh_bands_find_every_hash_within_the_distance():
    """Pigeonhole over 256 bits: bands cross the 64-bit words, and a hash `d` bits from a
    benchmark hash is found whichever bits differ (random hashes are about 128 bits apart)."""
    rng = random.Random(7)
    index = random_index(rng, 3_000)
    hashes = index.arrays["image_hashes"]
    number = hamming.hash_int(hashes[5])
    for start, width in [(0, 13), (58, 12), (60, 64), (250, 6)]:
        band = hamming.band_values(hashes[5:6], start, width)[0]
        assert int(band) == (number >> start) & ((1 << width) - 1)
    for distance in (0, 3, 20, 64):
        widths = [width for _, width, _, _ in index.band(distance).bands]
        assert sum(widths) == 256 and len(widths) == max(distance + 1, 4)
        for target in rng.sample(range(len(hashes)), 20):
            bits = rng.sample(range(256), distance)
            assert index.nearest_image(flipped(hashes[target], bits), distance) == (
                target,
                distance,
            )
            further = flipped(hashes[target], rng.sample(range(256), distance + 1))
            assert index.nearest_image(further, distance) is None
    with pytest.raises(ValidationError, match="image_distance"):
        DecontamFilter(benchmarks=[{"name": "b", "images": "."}], image_distance=65)


def pdf_page(path: Path, page: int, dpi: int) -> Image.Image:
    with pymupdf.open(path) as doc:
        return Image.open(io.BytesIO(doc[page].get_pixmap(dpi=dpi).tobytes("png"))).convert("RGB")


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    """The two reports of realistic_run: tables in one style, pages of a similar layout."""
    ferries, library = write_documents(tmp_path_factory.mktemp("reports"))
    return {"ferries": ferries, "library": library}


def test_256_bit_hashes_tell_unrelated_pages_from_near_copies(reports):
    """Every page of the sample PDFs and the two reports, at 72 dpi: unrelated pages stay far
    above the default distance (measured: 40 bits at the closest, ferries page 4 and library
    page 2, which a 64-bit phash puts 0 bits apart; then 56), and near copies of each page well
    under it (measured: at most 12 bits for another dpi, brightened or JPEG; 16 for a 1% crop,
    half a percent off each edge)."""
    default = DecontamFilter.model_fields["image_distance"].default
    documents = [*sorted(SAMPLES.glob("*.pdf")), reports["ferries"], reports["library"]]
    names, hashes, near = [], [], {}
    for path in documents:
        with pymupdf.open(path) as doc:
            count = len(doc)
        for page in range(count):
            names.append(f"{path.stem} page {page + 1}")
            hashes.append(decontam_hashes.image_hash(pdf_page(path, page, 72)))
            other_dpi = pdf_page(path, page, 100)
            width, height = other_dpi.size
            copies = {
                "100 dpi": decontam_hashes.image_hash(other_dpi),
                "brightened": decontam_hashes.image_hash(
                    ImageEnhance.Brightness(other_dpi).enhance(1.1)
                ),
                "jpeg q60 at 60 dpi": decontam_hashes.bytes_hash(
                    encoded(pdf_page(path, page, 60), "JPEG", quality=60)
                ),
                "1% crop": decontam_hashes.image_hash(
                    other_dpi.crop(
                        (width // 200, height // 200, width - width // 200, height - height // 200)
                    )
                ),
            }
            for kind, value in copies.items():
                near.setdefault(kind, []).append(int(hamming.popcount(value ^ hashes[-1])))
    assert len(names) == 31
    unrelated = min(
        (int(hamming.popcount(hashes[a] ^ hashes[b])), names[a], names[b])
        for a, b in combinations(range(len(hashes)), 2)
    )
    assert unrelated[0] >= default * 3 // 2, unrelated  # 40 measured, default 20
    farthest = {kind: max(bits) for kind, bits in near.items()}
    assert max(farthest[k] for k in ("100 dpi", "brightened", "jpeg q60 at 60 dpi")) <= default - 4
    assert farthest["1% crop"] <= default, farthest


def test_a_page_of_similar_layout_is_not_a_benchmark_image(reports, tmp_path):
    """Ferries page 4 and library page 2 (different reports in one style) do not match each
    other either way round; a near copy of either does."""
    ferries, library = pdf_page(reports["ferries"], 3, 72), pdf_page(reports["library"], 1, 72)
    for name, benchmark, other in [("library", library, ferries), ("ferries", ferries, library)]:
        folder = tmp_path / name
        folder.mkdir()
        benchmark.save(folder / f"{name}.png")
        flt = DecontamFilter(
            benchmarks=[{"name": "bench", "images": str(folder)}], cache_dir=str(tmp_path / "c")
        )
        source = reports[name]
        copy = encoded(pdf_page(source, 3 if name == "ferries" else 1, 100), "JPEG", quality=60)
        decisions = flt.decide(
            [
                pair("Q?", unit="other", images=[encoded(other)]),
                pair("Q?", unit="copy", images=[encoded(other), copy]),
            ]
        )
        assert decisions[0].passed, decisions[0].reason
        assert not decisions[1].passed
        assert decisions[1].reason.startswith(f"page image 2 is bench image {name}.png (")
        assert decisions[1].reason.endswith(" of 256 bits apart)")
