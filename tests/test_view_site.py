"""`curation view` without a browser: the site's data files, images, marker and comparison,
a running folder read from its journal, and the read-only server."""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pytest
from output_fixtures import RECIPE, document_units, outcome, page_png
from PIL import Image
from test_filter_cli import DEFAULT_CHAIN, build_input, read_folder, run_filter
from typer.testing import CliRunner

import curation.view.site as site_module
from curation.cli import app
from curation.outdir import FolderRefused, OutputFolder
from curation.output.card import write_card
from curation.output.journal import Journal
from curation.output.shards import DatasetWriter
from curation.schema import OUTCOME_SCHEMA, Decision, Outcome
from curation.units import error_row
from curation.view.serve import folder_stamp, refused, serve
from curation.view.site import SITE_MARKER, ImageWriter, build_site, js_data

HOSTILE = "</script><script>alert(1)</script> and <!-- a comment"
INPUTS = ["docs/report.pdf", "docs/slides.pdf", "docs/broken.pdf"]
DOC_IDS = {
    "docs/report.pdf": "aaaa1111",
    "docs/slides.pdf": "bbbb2222",
    "docs/broken.pdf": "cccc3333",
}


def rated(made: Outcome) -> Outcome:
    """Give each kept pair a per-axis judge decision."""
    for index, pair in enumerate(made.reply.pairs):
        if all(d.passed for d in pair.decisions):
            score = 3.0 + index
            ratings = [{"axis": "relevance", "score": score}]
            pair.decisions.append(Decision("judge", True, score, "", ratings))
    return made


def outcomes(flip: set[str] = frozenset(), drop: set[str] = frozenset()) -> list[Outcome]:
    """The Outcomes of a small run: 2 documents (3 units; one page image 900x1200), a
    planted script in an answer and in a reject, an unreadable reply, a broken input. `flip`:
    qa_ids whose rule decision is inverted; `drop`: qa_ids left out."""
    report = document_units("aaaa1111", "docs/report.pdf", n_pages=3, pages_per_unit=2)
    slides = document_units("bbbb2222", "docs/slides.pdf", n_pages=2, pages_per_unit=2)
    report[0]["images"][0] = page_png("big page", (900, 1200))
    made = [
        outcome(
            report[0],
            [
                ("What grew on page 1?", "The budget grew by 10 percent.", True),
                ("Which markup is on the page?", HOSTILE, True),
                ("Is [this] bad?", "Yes </script>", False),
            ],
        ),
        outcome(
            report[1],
            [("What is on the last page?", "A budget growth of 12 percent.", True)],
            prompt_id="docmatix/summary",
            parse_errors=("question without an answer",),
        ),
        outcome(
            slides[0],
            [
                ("What do the slides show?", "Two pages about the budget.", True),
                ("Which source is this?", "docs/slides.pdf", True),
            ],
        ),
        outcome(error_row("cccc3333", "docs/broken.pdf", "corrupt", "cannot <b>open</b>"), []),
    ]
    for one in made:
        one.reply.pairs = [p for p in one.reply.pairs if p.qa_id not in drop]
        for pair in one.reply.pairs:
            if pair.qa_id in flip:
                rule = pair.decisions[0]
                rule.passed = not rule.passed
                rule.reason = "" if rule.passed else "flipped"
        rated(one)
    return made


def write_output(out: Path, made: list[Outcome]) -> dict:
    writer = DatasetWriter(out, rows_per_shard=2, inputs=INPUTS)
    for one in made:
        writer.add(one)
    return writer.close(
        {"recipe_name": "tiny", "recipe": RECIPE, "recipe_hash": "0" * 64, "wall_seconds": 1.0}
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("view") / "tiny"
    write_output(out, outcomes())
    write_card(out)
    return out


def read_js(path: Path) -> tuple[str, object]:
    """A data file's name and value: `CURATION.add("name", JSON);`."""
    text = path.read_text(encoding="ascii")
    found = re.fullmatch(r'CURATION\.add\(("[^"]*"), (.*)\);\n', text, re.DOTALL)
    assert found, text[:200]
    return json.loads(found.group(1)), json.loads(found.group(2))


def load(site: Path, name: str):
    found, value = read_js(site / "data" / f"{name}.js")
    assert found == name
    return value


def chunks(site: Path, prefix: str) -> list[dict]:
    info = load(site, "overview")[prefix]
    return [item for i in range(info["chunks"]) for item in load(site, f"{prefix}-{i:05d}")]


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def test_the_site_holds_every_sample_reject_and_error_of_the_manifest(finished, tmp_path):
    started = time.perf_counter()
    overview = build_site(finished, tmp_path / "site")
    took = time.perf_counter() - started
    site = tmp_path / "site"
    manifest = json.loads((finished / "manifest.json").read_text())
    counts = manifest["counts"]
    assert load(site, "overview") == overview
    assert overview["status"] == "finished" and overview["name"] == "tiny"
    assert ["pairs kept", counts["pairs_kept"]] in overview["funnel"]
    samples, rejects, errors = (
        chunks(site, "samples"),
        chunks(site, "rejects"),
        load(site, "errors"),
    )
    assert len(samples) == overview["samples"]["total"] == counts["units_with_samples"] == 3
    assert sum(len(s["pairs"]) for s in samples) == counts["pairs_kept"] == 5
    assert len(rejects) == overview["rejects"]["total"] == 2
    assert sum(counts["rejected_by_filter"].values()) == 2  # a failed pair, an unreadable reply
    assert len(errors) == overview["errors"]["total"] == 1
    assert errors[0]["code"] == "corrupt" and errors[0]["source"] == "docs/broken.pdf"
    assert {r["filter"] for r in rejects} == {"rule", "parse"}
    assert all(r["sample"] == r["unit_id"] for r in rejects)  # every unit here kept a pair
    assert overview["counts"]["rejects_by_filter"] == [["parse", 1], ["rule", 1]]
    assert overview["counts"]["pairs_by_prompt"] == [
        ["docmatix/coverage", 4],
        ["docmatix/summary", 1],
    ]
    assert overview["counts"]["ratings_by_axis"] == [["relevance", 3.4]]
    assert overview["facets"]["documents"] == ["aaaa1111", "bbbb2222"]
    assert [name for name, _ in overview["plots"]][:1] == ["funnel"]
    for _, plot in overview["plots"]:
        assert (site / plot).is_file()
    first = samples[0]
    assert first["source"] == "docs/report.pdf#pages=1-2" and first["pages"] == [0, 1]
    assert first["pairs"][0]["ratings"] == [{"axis": "relevance", "score": 3.0}]
    for sample in samples:
        assert len(sample["images"]) == len(sample["pages"])
        for image in sample["images"]:
            with Image.open(site / image["thumb"]) as thumb:
                assert thumb.format == "JPEG" and max(thumb.size) <= 320
            assert (site / image["full"]).read_bytes()[:4] == b"\x89PNG"
    with Image.open(site / first["images"][0]["thumb"]) as thumb:
        assert thumb.size == (240, 320)  # the 900x1200 page, longest side 320
    assert is_marked(site)
    for static in site_module.STATIC.glob("*"):
        assert not static.is_file() or (site / static.name).read_bytes() == static.read_bytes()
    print(f"site of {len(samples)} samples built in {took:.3f} s")


def is_marked(site: Path) -> bool:
    return json.loads((site / SITE_MARKER).read_text())["tool"] == "curation"


def test_index_loads_each_script_after_those_it_takes_names_from():
    """The app is classic scripts (module scripts do not run from file://) sharing one global,
    CURATION: index.html loads every script of static/ once, each after the scripts that add the
    names it takes (`const { ... } = CURATION;`). A wrong order shows only in a browser."""
    index = (site_module.STATIC / "index.html").read_text()
    order = re.findall(r'<script src="([^"]+)"></script>', index)
    assert sorted(order) == sorted(path.name for path in site_module.STATIC.glob("*.js"))
    shared = {"add"}  # what data files call
    for name in order:
        script = (site_module.STATIC / name).read_text()
        taken = re.findall(r"const \{([^}]*)\} = CURATION;", script)
        added = re.findall(r"Object\.assign\((?:window\.)?CURATION, \{([^}]*)\}\)", script)
        assert words(taken) <= shared, f"{name} takes {sorted(words(taken) - shared)} too early"
        shared |= words(added)
    assert len(shared) > 20  # the regexes above found the scripts' names


def words(groups: list[str]) -> set[str]:
    """The names in `{ a, b, c }` groups."""
    return {word.strip() for group in groups for word in group.split(",") if word.strip()}


def test_a_planted_script_stays_text(finished, tmp_path):
    build_site(finished, tmp_path / "site")
    data = list((tmp_path / "site" / "data").glob("*.js"))
    for path in data:
        text = path.read_text(encoding="ascii")
        assert "<" not in text, path.name
        assert "</script" not in text.lower(), path.name
    answers = [p["answer"] for s in chunks(tmp_path / "site", "samples") for p in s["pairs"]]
    assert HOSTILE in answers
    assert "Yes </script>" in [r["answer"] for r in chunks(tmp_path / "site", "rejects")]
    assert load(tmp_path / "site", "errors")[0]["message"] == "cannot <b>open</b>"
    assert (
        js_data("x", {"v": float("nan"), "s": "<"})
        == 'CURATION.add("x", {"v": null, "s": "\\u003c"});\n'
    )


def test_a_size_cap_keeps_the_first_samples_and_says_so(finished, tmp_path, monkeypatch):
    monkeypatch.setattr(site_module, "CHUNK", 2)
    overview = build_site(finished, tmp_path / "site", max_samples=1)
    assert overview["samples"] == {"total": 1, "chunk": 2, "chunks": 1, "truncated_from": 3}
    assert overview["rejects"]["total"] == 1 and overview["rejects"]["truncated_from"] == 2
    assert ["pairs kept", 5] in overview["funnel"]  # the overview still counts everything
    full = build_site(finished, tmp_path / "all")
    assert full["samples"] == {"total": 3, "chunk": 2, "chunks": 2}
    assert [len(load(tmp_path / "all", f"samples-0000{i}")) for i in (0, 1)] == [2, 1]


def test_a_page_two_windows_share_is_written_once(tmp_path):
    shared = page_png("shared", (400, 200))
    rows = [
        {
            "doc_id": "../evil",
            "pages": [0, 1],
            "images": [{"bytes": page_png("p0")}, {"bytes": shared}],
        },
        {
            "doc_id": "../evil",
            "pages": [1, 2],
            "images": [{"bytes": shared}, {"bytes": b"no image"}],
        },
    ]
    with ThreadPoolExecutor(2) as pool:
        shown = ImageWriter(tmp_path, pool).write(rows)
    page = {"page": 1, "thumb": "img/_evil-p0001-thumb.jpg", "full": "img/_evil-p0001.png"}
    assert shown[0][1] == shown[1][0] == page
    assert shown[1][1] == {"page": 2, "thumb": None, "full": "img/_evil-p0002.jpg"}  # unreadable
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "_evil-p0000-thumb.jpg",
        "_evil-p0000.png",
        "_evil-p0001-thumb.jpg",
        "_evil-p0001.png",
        "_evil-p0002.jpg",
    ]
    with Image.open(tmp_path / "_evil-p0001-thumb.jpg") as thumb:
        assert thumb.size == (320, 160)


def test_only_a_site_of_its_own_is_replaced(finished, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("my notes")
    with pytest.raises(FolderRefused, match=f"{foreign}: holds files"):
        build_site(finished, foreign)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(FolderRefused, match="not a folder"):
        build_site(finished, a_file)
    empty = tmp_path / "empty"
    empty.mkdir()
    build_site(finished, empty)
    (empty / "stale.js").write_text("left from before")
    build_site(finished, empty)  # a site of ours: replaced whole
    assert is_marked(empty) and not (empty / "stale.js").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file", "mine"]  # no temp left


def test_a_running_folder_shows_what_its_journal_holds(finished, tmp_path):
    out = tmp_path / "running"
    journal = Journal(out, "h" * 64, INPUTS, DOC_IDS.get)
    for made in outcomes():
        journal.append(pa.Table.from_pylist([made.to_row()], schema=OUTCOME_SCHEMA))
    (out / ".lock").write_text(json.dumps({"tool": "curation", "pid": 1}))  # the run's lock
    before = listing(out)
    overview = build_site(out, tmp_path / "site")
    assert listing(out) == before  # read only: no lock taken, nothing written
    assert overview["status"] == "running"
    funnel = dict(map(tuple, overview["funnel"]))
    assert funnel["pairs kept"] == 5 and funnel["pairs rejected"] == 1 and funnel["units"] == 3
    assert funnel["unreadable replies (parse)"] == 1 and funnel["rejected by rule"] == 1
    assert funnel["errors: corrupt"] == 1
    # The same samples and rejects as the finished folder written from the same rows.
    done = tmp_path / "done"
    build_site(finished, done)
    assert chunks(tmp_path / "site", "samples") == chunks(done, "samples")
    assert chunks(tmp_path / "site", "rejects") == chunks(done, "rejects")
    assert load(tmp_path / "site", "errors") == load(done, "errors")
    assert overview["counts"]["ratings_by_axis"] == [["relevance", 3.4]]


def test_compare_lists_the_pairs_whose_fate_differs(finished, tmp_path):
    kept, rejected, dropped = "aaaa1111:0-1-0", "aaaa1111:0-1-2", "bbbb2222:0-1-1"
    other = tmp_path / "other"
    write_output(other, outcomes(flip={kept, rejected}, drop={dropped}))
    overview = build_site(finished, tmp_path / "site", compare=other)
    found = load(tmp_path / "site", "compare")
    rows = {row["qa_id"]: row for row in found["rows"]}
    assert set(rows) == {kept, rejected, dropped}
    assert (rows[kept]["here"], rows[kept]["there"], rows[kept]["there_reason"]) == (
        "kept",
        "rule",
        "flipped",
    )
    assert (rows[rejected]["here"], rows[rejected]["here_reason"], rows[rejected]["there"]) == (
        "rule",
        "bad",
        "kept",
    )
    assert (rows[dropped]["here"], rows[dropped]["there"]) == ("kept", "absent")
    assert rows[dropped]["question"] == "Which source is this?"
    assert overview["compare"] == {
        "other": str(other),
        "kept_here_rejected_there": 1,
        "rejected_here_kept_there": 1,
        "only_here": 1,
        "only_there": 0,
    }
    back = build_site(other, tmp_path / "back", compare=finished)["compare"]
    assert (back["only_there"], back["only_here"]) == (1, 0)
    assert load(tmp_path / "back", "compare")["rows"][-1]["here"] == "absent"


def test_a_folder_that_is_no_output_folder_is_named(tmp_path):
    result = CliRunner().invoke(app, ["view", str(tmp_path), "--static"])
    assert result.exit_code == 2
    assert f"{tmp_path}: not an output folder" in " ".join(result.output.split())
    assert list(tmp_path.iterdir()) == []


# Keeps both units of the planted set (each loses a pair at most): two rows to show.
ECHO_CHAIN = "name: echo\nfilters:\n  - type: non_empty\n  - type: answer_echo\n"


def filtered(layout: str, tmp_path: Path) -> Path:
    """The output of a real `curation filter` over the planted set in `layout`."""
    chain = DEFAULT_CHAIN
    if layout == "docmatix_parquet":
        chain = tmp_path / "echo.yaml"
        chain.write_text(ECHO_CHAIN)
    out = tmp_path / "filtered"
    result = run_filter(
        str(build_input(layout, tmp_path)), "--chain", str(chain), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("layout", ["shards", "docmatix_parquet", "flat_jsonl"])
def test_the_output_of_filter_shows_its_kept_rows_rejects_and_funnel(tmp_path, layout):
    out = filtered(layout, tmp_path)
    funnel = json.loads((out / "funnel.json").read_text())
    kept = read_folder(out / "data").to_pylist()
    rejected = read_folder(out / "rejects").to_pylist()
    overview = build_site(out, tmp_path / "site")
    site = tmp_path / "site"
    assert overview["status"] == "filtered" and overview["name"] == "filtered"

    samples = chunks(site, "samples")
    assert len(samples) == overview["samples"]["total"] == funnel["rows_out"] == len(kept)
    if layout == "flat_jsonl":  # a flat row is one pair, shown under its own id
        pairs = [(row["question"], row["answer"]) for row in kept]
        assert [s["id"] for s in samples] == [row["id"] for row in kept]
    else:
        pairs = [(t["user"], t["assistant"]) for row in kept for t in row["texts"]]
    shown = [(p["question"], p["answer"]) for s in samples for p in s["pairs"]]
    assert shown == pairs and len(shown) == funnel["pairs_kept"]
    images = [image["full"] for s in samples for image in s["images"]]
    assert len(images) == len(set(images)) == sum(len(row.get("images") or []) for row in kept)
    for sample in samples:
        for image in sample["images"]:
            assert (site / image["thumb"]).is_file() and (site / image["full"]).is_file()

    rejects = chunks(site, "rejects")
    assert len(rejects) == overview["rejects"]["total"] == funnel["pairs_rejected"] > 0
    assert [(r["question"], r["filter"], r["reason"]) for r in rejects] == [
        (r["question"], r["filter"], r["reason"]) for r in rejected
    ]
    assert all(r["reason"] for r in rejects)
    by_filter = {name: n for name, n in overview["counts"]["rejects_by_filter"]}
    for entry in funnel["filters"]:
        assert [f"rejected by {entry['filter']}", entry["rejected"]] in overview["funnel"]
        assert by_filter.get(entry["filter"], 0) == entry["rejected"]
    for label, key in (
        ("rows in", "rows_in"),
        ("pairs kept", "pairs_kept"),
        ("rows out", "rows_out"),
    ):
        assert [label, funnel[key]] in overview["funnel"]
    assert load(site, "errors") == []


def test_view_static_opens_a_filter_output_and_names_what_it_cannot_open(finished, tmp_path):
    out = filtered("flat_jsonl", tmp_path)
    result = CliRunner().invoke(app, ["view", str(out), "--static"])
    assert result.exit_code == 0, result.output
    assert load(out / "report" / "site", "overview")["status"] == "filtered"
    assert "funnel.json" in [name for name, *_ in folder_stamp(out)]  # a rerun: a rebuild

    export = tmp_path / "llava"
    made = CliRunner().invoke(
        app, ["export", str(finished), "--format", "llava", "--out", str(export)]
    )
    assert made.exit_code == 0, made.output
    before = listing(export)
    refused_export = CliRunner().invoke(app, ["view", str(export), "--static"])
    assert refused_export.exit_code == 2
    told = " ".join(refused_export.output.split())
    assert f"{export}: the output of `curation export`" in told
    assert "view the folder it was exported from" in told
    assert listing(export) == before

    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    with OutputFolder(unfinished, "filter"):  # claimed; the filter died before its funnel
        pass
    result = CliRunner().invoke(app, ["view", str(unfinished), "--static"])
    assert result.exit_code == 2
    assert "`curation filter` has not finished writing this folder" in " ".join(
        result.output.split()
    )


@pytest.mark.parametrize("kind", ["run", "filter"])
def test_an_unreadable_shard_is_an_error_naming_it(finished, tmp_path, kind, caplog):
    """A shard that is a link to a text file and a truncated one: each is an error row naming
    the file and a warning (stderr), the rest of the folder is shown, and no traceback."""
    if kind == "run":
        out = Path(shutil.copytree(finished, tmp_path / "tiny"))
        linked = out / "data" / "train-00000-of-00002.parquet"
    else:
        out = filtered("shards", tmp_path)
        linked = out / "data" / "train-00000-of-00001.parquet"
    truncated = out / "rejects" / "rejects-00000-of-00001.parquet"
    notes = tmp_path / "notes.txt"
    notes.write_text("not a parquet file\n")
    linked.unlink()
    linked.symlink_to(notes)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])

    result = CliRunner().invoke(app, ["view", str(out), "--static"])
    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert f"{linked}: not a readable Parquet file" in caplog.text
    assert f"{truncated}: not a readable Parquet file" in caplog.text
    site = out / "report" / "site"
    errors = load(site, "errors")
    unreadable = {e["source"]: e for e in errors if e["code"] == "unreadable_shard"}
    assert set(unreadable) == {str(linked), str(truncated)}
    assert all(e["message"].startswith("not a readable Parquet file") for e in unreadable.values())
    assert len(errors) == len(unreadable) + (kind == "run")  # the run's own error row stays
    assert chunks(site, "rejects") == []
    assert len(chunks(site, "samples")) == (1 if kind == "run" else 0)  # the other shard's row


def test_view_static_writes_only_report_site(finished, tmp_path):
    out = Path(shutil.copytree(finished, tmp_path / "tiny"))
    before = listing(out)
    result = CliRunner().invoke(app, ["view", str(out), "--static"])
    assert result.exit_code == 0, result.output
    site = out / "report" / "site"
    assert is_marked(site)
    assert f"open {site / 'index.html'}" in result.output
    after = listing(out)
    changed = {name for name in after if after[name] != before.get(name)}
    assert changed, "the site was written"
    assert all(name == "report" or name.startswith("report/site") for name in changed), changed
    assert set(before) <= set(after)
    assert load(site, "overview")["samples"]["total"] == 3
    (site / SITE_MARKER).unlink()  # no longer ours
    refused_again = CliRunner().invoke(app, ["view", str(out), "--static"])
    assert refused_again.exit_code == 2
    assert "did not write" in " ".join(refused_again.output.split())


@pytest.fixture
def placeholder_app(tmp_path, monkeypatch) -> Path:
    """A stand-in for the app files, in a tmp folder, with a symlink that leads out."""
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<!doctype html><title>view</title>")
    os.symlink("/etc/hostname", static / "leak.txt")
    monkeypatch.setattr(site_module, "STATIC", static)
    return static


def start(out: Path, **kwargs) -> tuple[str, threading.Event, threading.Thread]:
    ready: queue.Queue = queue.Queue()
    stop = threading.Event()
    thread = threading.Thread(
        target=serve, args=(out,), kwargs={"on_ready": ready.put, "stop": stop, **kwargs}
    )
    thread.start()
    return ready.get(timeout=60), stop, thread


def request(url: str, method: str, path: str) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=30)
    conn.request(method, path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def test_the_server_serves_the_site_read_only(finished, tmp_path, placeholder_app):
    out = tmp_path / "tiny"
    write_output(out, outcomes())
    before = listing(out)
    url, stop, thread = start(out)
    try:
        assert url.startswith("http://127.0.0.1:")
        assert request(url, "GET", "/") == (200, b"<!doctype html><title>view</title>")
        assert request(url, "GET", "/index.html")[0] == 200
        status, body = request(url, "GET", "/data/overview.js")
        assert status == 200 and body.startswith(b'CURATION.add("overview", ')
        assert request(url, "HEAD", "/data/overview.js")[0] == 200
        assert request(url, "GET", "/data/overview.js?t=1")[0] == 200
        for path in (
            "/../manifest.json",
            "/%2e%2e/manifest.json",
            "/data/../../x",
            "//etc/passwd",
            "/%2e%2e%2f%2e%2e%2fetc/passwd",
            "/%252e%252e/manifest.json",
            "/..%5cmanifest.json",
            "/.curation-site",
            "/leak.txt",
            "/data/",
            "/data",
            "/manifest.json",
        ):
            assert request(url, "GET", path)[0] in (403, 404), path
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            assert request(url, method, "/index.html")[0] == 405, method
        assert listing(out) == before  # serving wrote nothing inside the output folder
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["recipe_name"] = "renamed"
        (out / "manifest.json").write_text(json.dumps(manifest))
        assert b'"name": "renamed"' in request(url, "GET", "/data/overview.js")[1]
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_serving_beyond_this_host_warns(finished, capsys, placeholder_app):
    url, stop, thread = start(finished, host="0.0.0.0")
    stop.set()
    assert url.startswith("http://0.0.0.0:")
    thread.join(timeout=30)
    assert "visible to the network" in capsys.readouterr().err


def test_refused_paths():
    assert refused("/index.html") is None and refused("/data/samples-00000.js?x=1") is None
    for path in ("/../x", "/a/%2E%2E/x", "x", "//x", "/a\\b", "/%00", "/.hidden", "/a/./b"):
        assert refused(path) is not None, path
