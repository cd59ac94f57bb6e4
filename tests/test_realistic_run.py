"""The shipped recipe and chains on what a 7B-70B instruction model writes: `curation run` with
`engine: openai` against a scripted OpenAI-compatible server (a FAKE standing in for vLLM, see
tests/scripted_server.py) over two reports with tables, then `curation filter` on the same pairs.

Every pair is labelled (tests/realistic_run.py): correct ones — derived numbers included — must
be kept by `filters/default.yaml` as shipped, wrong numbers rejected, and nothing lost: every
pair the replies hold is in `data/` or in `rejects/` with its filter and reason.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pymupdf
import pytest
import yaml
from conftest import ROOT, curation_cli
from realistic_run import (
    EXPECTED,
    LIBRARY_UNIT_2,
    REPLIES,
    TRUNCATED_QUESTION,
    reply_for,
    write_documents,
)
from scripted_server import message_text, scripted_server

from curation.generate.parse import parse_reply
from curation.ingest.pdf import page_text


def read_rows(folder: Path) -> list[dict]:
    return [row for f in sorted(folder.glob("*.parquet")) for row in pq.read_table(f).to_pylist()]


def kept_and_rejected(out: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """Kept pairs (question -> text turn + its qa_meta) and rejected pairs (question -> reject row)."""
    kept = {}
    for row in read_rows(out / "data"):
        for turn, meta in zip(row["texts"], row["qa_meta"], strict=True):
            kept[turn["user"]] = {**turn, **meta}
    rejected = {r["question"]: r for r in read_rows(out / "rejects") if r["question"]}
    return kept, rejected


def write_recipe(tmp_path: Path, inputs: Path, server, chain: str, out: Path) -> Path:
    recipe = yaml.safe_load((ROOT / "recipes" / "docmatix.yaml").read_text())
    recipe["inputs"] = [str(inputs / "*.pdf")]
    recipe["ingest"] = {**recipe.get("ingest", {}), "dpi": 72}
    recipe["generate"].update(
        engine="openai",
        model="bundled",  # whatever the server serves
        base_url=server.base_url,
        pairs_per_unit=12,
        max_tokens=1024,
        concurrency=4,
        cache_dir=str(tmp_path / "cache"),
    )
    recipe["filters"] = str(ROOT / chain)
    recipe["output"] = {"dir": str(out)}
    path = tmp_path / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


GOLDEN = ROOT / "tests" / "data" / "golden" / "realistic_run.json"


def normalized_rows(out: Path) -> dict:
    """What a run wrote, without what differs between machines or runs (temporary paths, wall
    times, package versions): page images as sha256s, sources as file names."""

    def name(source: str) -> str:
        path, _, page = source.partition("#")
        return Path(path).name + (f"#{page}" if page else "")

    data = []
    for row in read_rows(out / "data"):
        row["images"] = [hashlib.sha256(i["bytes"]).hexdigest() for i in row["images"]]
        row["texts"] = [{**t, "source": name(t["source"])} for t in row["texts"]]
        data.append(row)
    rejects = [{**r, "source": name(r["source"])} for r in read_rows(out / "rejects")]
    errors = [
        {"source": name(e["source"]), "stage": e["stage"], "code": e["code"]}
        for e in read_rows(out / "errors")
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    return {"data": data, "rejects": rejects, "errors": errors, "counts": manifest["counts"]}


def score(kept: dict, rejected: dict) -> dict:
    correct = [e for e in EXPECTED if e.keep]
    wrong = [e for e in EXPECTED if not e.keep]
    return {
        "correct_kept": sum(e.question in kept for e in correct) / len(correct),
        "wrong_rejected": sum(e.question in rejected for e in wrong) / len(wrong),
        "lost": [e.question for e in EXPECTED if e.question not in kept | rejected],
        "correct_dropped": {
            e.question: rejected[e.question]["reason"] for e in correct if e.question in rejected
        },
        "wrong_kept": [e.question for e in wrong if e.question in kept],
    }


@dataclass
class Runs:
    default: Path  # filters/default.yaml
    docmatix: Path  # filters/docmatix.yaml, every reply from the response cache
    requests: int  # requests the server answered for the first run
    resent: int  # requests the second run sent


@pytest.fixture(scope="module")
def runs(tmp_path_factory, ray_session) -> Runs:
    """The Docmatix recipe with `engine: openai` on the two reports (and one corrupt PDF) with
    each shipped chain; the second run reads every reply from the response cache."""
    tmp_path = tmp_path_factory.mktemp("realistic")
    inputs = tmp_path / "inputs"
    write_documents(inputs)
    (inputs / "broken.pdf").write_bytes(b"%PDF-1.7\nnot a PDF after all\n")
    with scripted_server(lambda messages: reply_for(message_text(messages))) as server:
        out = tmp_path / "out-default"
        result = curation_cli(
            "run", str(write_recipe(tmp_path, inputs, server, "filters/default.yaml", out))
        )
        assert result.exit_code == 0, result.output[-3000:]
        sent = len(server.requests)
        out_docmatix = tmp_path / "out-docmatix"
        recipe = write_recipe(tmp_path, inputs, server, "filters/docmatix.yaml", out_docmatix)
        result = curation_cli("run", str(recipe))
        assert result.exit_code == 0, result.output[-3000:]
        return Runs(out, out_docmatix, sent, len(server.requests) - sent)


@pytest.mark.e2e
def test_shipped_chains_on_realistic_replies(runs: Runs) -> None:
    out = runs.default
    assert runs.requests == 4  # four units of two pages, one request each

    kept, rejected = kept_and_rejected(out)
    figures = score(kept, rejected)
    print(json.dumps(figures, indent=2))
    assert figures["lost"] == []
    assert figures["correct_kept"] >= 0.95, figures["correct_dropped"]
    assert figures["wrong_rejected"] >= 0.95, figures["wrong_kept"]
    for question, row in rejected.items():
        assert row["filter"] and row["reason"], question
    # Nothing invented: every kept or rejected pair is one the replies hold.
    known = {e.question for e in EXPECTED}
    assert set(kept) <= known and set(rejected) <= known

    # The cut-off pair is a reject with its reason, and the funnel counts every pair.
    cut = [r for r in read_rows(out / "rejects") if not r["question"]]
    assert (
        len(cut) == 1
        and "cut off" in cut[0]["reason"]
        and TRUNCATED_QUESTION[:40] in cut[0]["reason"]
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["pairs_generated"] == len(EXPECTED)
    # The corrupt input is an error row with its code; the run went on.
    errors = read_rows(out / "errors")
    assert [Path(e["source"]).name for e in errors] == ["broken.pdf"] and errors[0]["code"]

    # Citations are cleaned by the default chain, their pages kept as evidence.
    routes = kept["Which three routes does Northwind Ferries run across Kestrel Bay?"]
    assert routes["assistant"] == "The Harbor Line, the Island Loop and the Bay Express."
    assert 1 in routes["evidence_pages"]
    difference = kept["How many more passengers did the Harbor Line carry in Q3 than in Q1?"]
    assert "[page 1]" not in difference["assistant"]
    # The bullet-list answer keeps its items, one per line.
    northgate = kept["How many of each format did the Northgate branch lend?"]["assistant"]
    assert northgate.splitlines() == [
        "- Books: 87 thousand",
        "- E-books: 35 thousand",
        "- Audiobooks: 12 thousand",
    ]


@pytest.mark.e2e
def test_the_docmatix_chain_stays_faithful(runs: Runs) -> None:
    """The Docmatix chain, as shipped: brackets and decimals drop a pair. Same recipe otherwise:
    every reply comes from the response cache."""
    assert runs.resent == 0
    kept_d, rejected_d = kept_and_rejected(runs.docmatix)
    assert set(kept_d) | set(rejected_d) == {e.question for e in EXPECTED}
    assert (
        "bracket_span"
        in rejected_d["Which three routes does Northwind Ferries run across Kestrel Bay?"]["reason"]
    )
    assert "word_dot_word" in rejected_d["How much did revenue grow from 2024 to 2025?"]["reason"]


@pytest.mark.e2e
def test_the_run_writes_the_golden_rows(runs: Runs) -> None:
    """Behaviour kept through refactors: the default run's rows, normalized (ids, texts, qa_meta,
    rejects with reasons, error codes, manifest counts, page-image sha256s), equal the golden
    file. A change that alters outputs on purpose regenerates it (CURATION_UPDATE_GOLDEN=1) in a
    commit of its own that says why."""
    rows = normalized_rows(runs.default)
    if os.environ.get("CURATION_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(rows, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    golden = json.loads(GOLDEN.read_text())
    for part in golden:
        assert rows[part] == golden[part], part


def test_curation_filter_with_the_default_chain_on_realistic_pairs(tmp_path: Path) -> None:
    """The same labelled pairs as flat question/answer/context rows through `curation filter`."""
    docs = write_documents(tmp_path / "inputs")
    pages = [[page_text(p) for p in pymupdf.open(d)] for d in docs]
    contexts = {  # each reply's unit: the two pages its first page opens
        phrase: "\n".join(doc[i : i + 2])
        for phrase in REPLIES
        for doc in pages
        for i in (0, 2)
        if phrase in doc[i]
    }
    rows = [
        {"question": item.question, "answer": item.answer, "context": contexts[phrase]}
        for phrase, reply in REPLIES.items()
        for item in parse_reply(reply, cut_off=reply is LIBRARY_UNIT_2).pairs
    ]
    source = tmp_path / "pairs.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "filtered"
    result = curation_cli(
        "filter", str(source), "--chain", "filters/default.yaml", "--out", str(out)
    )
    assert result.exit_code == 0, result.output[-3000:]
    kept = {r["question"] for r in read_rows(out / "data")}
    rejected = {r["question"]: r for r in read_rows(out / "rejects")}
    figures = score(dict.fromkeys(kept), rejected)
    print(json.dumps(figures, indent=2))
    assert figures["lost"] == []
    assert figures["correct_kept"] >= 0.95, figures["correct_dropped"]
    assert figures["wrong_rejected"] >= 0.95, figures["wrong_kept"]
