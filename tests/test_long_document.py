"""recipes/examples/long-document.yaml as shipped — layouts, typed questions with negatives, page
dedup across documents and benchmark decontamination — run with `engine: openai` against a
scripted OpenAI-compatible server (a FAKE standing in for vLLM with a 7B model, see
tests/scripted_server.py) that answers each prompt the way its question type asks, over two
reports and a third document that repeats two of their pages."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pymupdf
import pytest
import yaml
from conftest import ROOT, curation_cli
from realistic_run import write_documents
from scripted_server import message_text, scripted_server

from curation.config import load_recipe
from curation.ingest import document_id
from curation.units import document_layout

pytestmark = pytest.mark.e2e

PAGE = re.compile(r"--- Page (\d+) ---\n(.*?)(?=\n--- Page \d+ ---|\nWrite \d+ question)", re.S)
PLANTED_QUESTION = (
    "Which three routes does Northwind Ferries run across Kestrel Bay according to the report?"
)
# Words a page may hold that make poor question terms.
COMMON = {"Table", "The", "In", "It", "A", "Q1", "Q2", "Q3", "Q4"}


def pages_of(text: str) -> dict[int, str]:
    return {int(n): body for n, body in PAGE.findall(text)}


def first_sentence(text: str) -> str:
    flat = " ".join(text.split())
    return re.split(r"(?<=[.!?])\s", flat)[0][:300]


def only_on(pages: dict[int, str], n: int) -> list[str]:
    """Capitalized words of page n that no other page of the unit holds."""
    others = " ".join(body for m, body in pages.items() if m != n)
    words = dict.fromkeys(re.findall(r"\b[A-Z][a-z]{3,}\b", pages[n]))
    return [w for w in words if w not in COMMON and w not in others]


def pair(q: str, a: str, r: str, evidence: list[int], n: int) -> str:
    return f"Q{n}: {q}\nA{n}: {a}\nR{n}: {r}\nE{n}: pages {', '.join(map(str, evidence))}\n"


def reply(messages: list[dict]) -> str:
    """A reply of the prompt's question type, built from the unit's pages."""
    system, text = messages[0]["content"], message_text(messages)
    pages = pages_of(text)
    first = min(pages)
    sentence = first_sentence(pages[first])
    if "do NOT answer" in system:
        term = (only_on(pages, first) or ["harbour"])[0]
        return pair(
            f"How much did the Zanzibar office pay for {term} in 2031?",
            f"The document does not state what the Zanzibar office paid for {term}.",
            "No page mentions a Zanzibar office or 2031.",
            [first],
            1,
        )
    out = pair(f"Which statement opens page {first}?", sentence, f"Page {first}.", [first], 1)
    if "Northwind Ferries runs three routes" in pages[first]:
        out += pair(
            PLANTED_QUESTION,
            "The Harbor Line, the Island Loop and the Bay Express.",
            "Page 1 lists them.",
            [first],
            2,
        )
    if ("two different pages" in system or "compare two things" in system) and len(pages) > 1:
        a, b = sorted(pages)[:2]
        wa, wb = (only_on(pages, a) or ["?"])[0], (only_on(pages, b) or ["?"])[0]
        out = pair(
            f"How do {wa} and {wb} relate in this document?",
            f"{wa} is covered on page {a} and {wb} on page {b}.",
            f"Page {a} names {wa}; page {b} names {wb}.",
            [a, b],
            1,
        )
        out += pair(f"What does the document say about {wa}?", sentence, "One page.", [a], 2)
    return out


@dataclass
class Run:
    out: Path
    requests: list[dict]
    layouts: dict[str, str]  # source name -> layout
    duplicate_doc: Path


def write_duplicate_document(inputs: Path, ferries: Path) -> Path:
    """A third document: the ferries report's first two pages, then a page of its own."""
    path = inputs / "northwind_ferries_2025_digest.pdf"  # after the report, in input order
    with pymupdf.open(ferries) as src, pymupdf.open() as doc:
        doc.insert_pdf(src, from_page=0, to_page=1)
        page = doc.new_page(width=612, height=792)
        page.insert_text(
            (72, 100), "Digest notes: Gull Point pier reopens in April after repairs.", fontsize=11
        )
        doc.save(path, no_new_id=True)
    return path


def write_benchmark(folder: Path, library: Path) -> Path:
    """A benchmark with the planted question (other case and punctuation), an unrelated item, a
    page image of the library report rendered at another resolution, and an unrelated image."""
    folder.mkdir(parents=True)
    items = [
        {
            "questionId": 7,
            "question": PLANTED_QUESTION.upper().replace("?", " ?"),
            "answers": ["x"],
        },
        {
            "questionId": 8,
            "question": "What is the name of the ship that sank in 1912 near Newfoundland and who built it?",
            "answers": ["Titanic"],
        },
    ]
    (folder / "bench.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    images = folder / "images"
    images.mkdir()
    with pymupdf.open(library) as doc:
        doc[1].get_pixmap(dpi=100).save(images / "library-p2.png")
    blank = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 300, 400), False)
    blank.set_rect(blank.irect, (30, 120, 200))
    blank.save(images / "unrelated.png")
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory, ray_session) -> Run:
    tmp = tmp_path_factory.mktemp("long-document")
    ferries, library = write_documents(tmp / "inputs")
    duplicate = write_duplicate_document(tmp / "inputs", ferries)
    bench = write_benchmark(tmp / "bench", library)
    chain = tmp / "chain.yaml"
    chain.write_text(
        yaml.safe_dump(
            {
                "name": "long-document-test",
                "extends": str(ROOT / "recipes" / "examples" / "long-document-chain.yaml"),
                "filters": [
                    {
                        "type": "decontaminate",
                        "benchmarks": [
                            {
                                "name": "planted",
                                "path": str(bench / "bench.jsonl"),
                                "answer": "answers",
                                "images": str(bench / "images"),
                            }
                        ],
                        "cache_dir": str(tmp / "decontam"),
                    }
                ],
            }
        )
    )
    recipe = yaml.safe_load((ROOT / "recipes" / "examples" / "long-document.yaml").read_text())
    recipe["inputs"] = [str(tmp / "inputs" / "*.pdf")]
    recipe["ingest"]["dpi"] = 72
    # Eleven pages make a handful of units: half of them (not 8%) get a not_answerable prompt, so
    # the run surely has some (the share itself is tested over 1,000 units in
    # test_question_types.py).
    recipe["generate"]["negative_share"] = 0.5
    recipe["filters"] = str(chain)
    recipe["output"] = {"dir": str(tmp / "out")}
    with scripted_server(reply) as server:
        recipe["generate"].update(base_url=server.base_url, cache_dir=str(tmp / "cache"))
        path = tmp / "recipe.yaml"
        path.write_text(yaml.safe_dump(recipe))
        result = curation_cli("run", str(path))
        assert result.exit_code == 0, result.output[-3000:]
        requests = list(server.requests)
    units = load_recipe(path).units
    layouts = {
        p.name: document_layout(document_id(p), units) for p in (ferries, library, duplicate)
    }
    return Run(tmp / "out", requests, layouts, duplicate)


def rows(folder: Path) -> list[dict]:
    return [r for f in sorted(folder.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def test_layouts_types_and_negatives(run: Run) -> None:
    manifest = json.loads((run.out / "manifest.json").read_text())
    counts = manifest["counts"]
    print(run.layouts, counts)
    assert set(counts["units_by_layout"]) == set(run.layouts.values())
    kept = [
        (meta, turn)
        for r in rows(run.out / "data")
        for meta, turn in zip(r["qa_meta"], r["texts"], strict=True)
    ]
    types = Counter(meta["question_type"] for meta, _ in kept)
    assert types["not_answerable"] >= 1, types
    negatives = [t for m, t in kept if m["question_type"] == "not_answerable"]
    assert all("does not state" in t["assistant"] for t in negatives)
    asked = sum("do NOT answer" in r["messages"][0]["content"] for r in run.requests)
    assert len(negatives) == asked  # every correct negative survives the default chain
    card = (run.out / "README.md").read_text()
    assert "not_answerable" in card


def test_repeated_pages_are_skipped_before_generation(run: Run) -> None:
    counts = json.loads((run.out / "manifest.json").read_text())["counts"]
    layout = run.layouts[run.duplicate_doc.name]
    expected = {"page": 2, "window": 1, "document": 0}[layout]
    assert sum(counts["units_skipped"].values()) == expected, (layout, counts)
    assert counts["pages_duplicate"] == 2
    digest_page = "Gull Point pier reopens in April"
    for request in run.requests:  # a request for the digest shows its own page
        text = message_text(request["messages"])
        if "Digest notes" in text:
            assert digest_page in text


def test_benchmark_items_and_images_are_caught(run: Run) -> None:
    rejects = rows(run.out / "rejects")
    assert all(r["question_type"] for r in rejects if r["question"])  # rejects keep their type
    planted = [r for r in rejects if r["question"] == PLANTED_QUESTION]
    assert planted and all(r["filter"] == "decontaminate" for r in planted)
    assert "planted item 7" in planted[0]["reason"]
    by_image = [
        r for r in rejects if r["filter"] == "decontaminate" and "library-p2.png" in r["reason"]
    ]
    assert by_image
    kept_pages = {(r["doc_id"], p) for r in rows(run.out / "data") for p in r["pages"]}
    assert all((r["doc_id"], 1) not in kept_pages for r in by_image)
    assert not any("unrelated" in r["reason"] for r in rejects)
