"""Exact resume: `curation run` killed with SIGKILL during ingest, during generation and during
writing, then run again, ends with the same dataset as an uninterrupted run, and no LLM request
is sent twice. The killed runs are real CLI processes (with their own Ray); the runs that finish
run the same command line in this process (the session's Ray). The real bundled model (the
changed-file test, which tests the journal, asks a scripted server). The units mix layouts
(whole documents and single pages, drawn per document), so resume is exact for both."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pymupdf
import pytest
import yaml
from conftest import (
    LENIENT_CHAIN,
    ROOT,
    SHORT_DOCUMENTS,
    curation_cli,
    make_bad_inputs,
    make_pdf,
)
from test_journal import chunk_rows

from curation.config import load_recipe
from curation.outdir import LOCK, MARKER
from curation.run import run_recipe
from curation.seeding import file_sha256

pytestmark = pytest.mark.e2e

RECIPE = """
name: resume
inputs: ["{inputs}/*.pdf"]
ingest: {{dpi: 72, ocr: never}}
units: {{layout: {{page: 1, document: 1}}, pages_per_unit: 1, max_pages_per_unit: 4}}
generate: {{pairs_per_unit: 2, max_tokens: {max_tokens}, batch_size: 1, seed: 5, cache_dir: "{cache}"}}
filters: {chain}
output: {{dir: "{out}", rows_per_shard: 1}}
"""


def write_recipe(folder: Path, inputs: Path, out: Path, cache: Path, max_tokens: int = 40) -> Path:
    """The resume recipe; 40 tokens give the killed run pairs to write (shards to kill in)."""
    chain = folder / "lenient.yaml"
    chain.write_text(LENIENT_CHAIN)
    recipe = folder / f"{out.name}.yaml"
    text = RECIPE.format(inputs=inputs, chain=chain, out=out, cache=cache, max_tokens=max_tokens)
    recipe.write_text(text)
    return recipe


def start(recipe: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "curation", "run", str(recipe)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the kill takes Ray's processes too
    )


def kill_when(process: subprocess.Popen, ready, timeout: float = 600) -> None:
    """SIGKILL the run and everything it started, as soon as `ready()` holds."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, process.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the kill point was never reached"
        time.sleep(0.05)
    family = psutil.Process(process.pid).children(recursive=True)
    os.killpg(process.pid, signal.SIGKILL)
    for child in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    process.wait(timeout=60)
    psutil.wait_procs(family, timeout=30)
    assert process.returncode == -signal.SIGKILL


def working_on(process: subprocess.Popen, stage: str):
    """True while one of the run's processes is a Ray worker running `stage`."""

    def check() -> bool:
        try:
            family = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return False
        for child in family:
            try:
                if stage in " ".join(child.cmdline()):
                    return True
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return False

    return check


def in_flight(cache: Path) -> set[str]:
    """Requests in `sent.log` with no stored reply."""
    sent = set((cache / "sent.log").read_text().split()) if (cache / "sent.log").exists() else set()
    return sent - {path.stem for path in cache.glob("*/*.json")}


def finish(recipe: Path):
    """`curation run` to the end, in this process (the session's Ray): resuming needs no
    process of its own, only the killed run's folder."""
    result = curation_cli("run", str(recipe))
    assert result.exit_code == 0, result.output[-3000:]
    return result


def dataset_fingerprint(out: Path) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())
    return {
        "files": manifest["files"],
        "counts": {k: v for k, v in manifest["counts"].items()},
        "inputs": manifest["inputs"],
    }


# What the resume documents' last pages add, so that the per-document layout draw (from the
# file's bytes) gives two whole-document units (council, ebike) and one page-by-page document.
ISSUED = {"council.pdf": " (Issued 2019.)", "ebike.pdf": " (Issued 2020.)"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Three documents of two short pages (small prompts: each unit takes seconds) and a corrupt
    one. The texts are chosen so the per-document layout draw gives two whole-document units and
    one document of single pages."""
    folder = tmp_path_factory.mktemp("resume-inputs")
    for name, pages in SHORT_DOCUMENTS.items():
        make_pdf(folder / name, [*pages[:-1], pages[-1] + ISSUED.get(name, "")])
    make_bad_inputs(folder / "bad")["corrupt"].rename(folder / "corrupt.pdf")
    return folder


def test_killed_runs_resume_to_the_same_dataset(ray_local, inputs: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "killed", tmp_path / "killed-cache"
    recipe = write_recipe(tmp_path, inputs, out, cache)
    journal = out / ".journal"

    # 1. During ingest: a Ray worker is reading documents; nothing generated yet.
    run = start(recipe)
    kill_when(run, working_on(run, "ingest_batch"))
    assert not (out / "manifest.json").exists()
    # The folder was claimed before any work; the killed run's lock stays, to be taken over.
    assert (out / MARKER).exists() and (out / LOCK).exists()

    # 2. During generation: some units are in the journal, not all. A document's units come back
    # as one chunk, so the first chunk is the earliest point that is surely before the end (three
    # readable documents: waiting for a third chunk raced the run's own finish).
    run = start(recipe)
    kill_when(run, lambda: len(list(journal.glob("chunk-*.arrow"))) >= 1)
    chunks_before = len(list(journal.glob("chunk-*.arrow")))
    assert not (out / "manifest.json").exists()
    cut_off = in_flight(cache)  # sent, but the kill came before the reply

    # 3. During writing: shard files are being written (slowed down by the test hook).
    run = start(recipe, CURATION_TEST_WRITE_DELAY_S="1")
    kill_when(run, lambda: len(list((out / ".staging" / "data").glob(".part-*"))) >= 2)
    assert not (out / "manifest.json").exists()
    assert len(list(journal.glob("chunk-*.arrow"))) >= chunks_before  # nothing lost

    # 4. Run to the end.
    finish(recipe)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["resumed"] is True
    assert not journal.exists() and not (out / ".staging").exists()

    ids = [i for f in sorted((out / "data").glob("*.parquet")) for i in pq.read_table(f)["id"]]
    assert len(ids) == len(set(ids)) > 0
    statuses = Counter(record["status"] for record in manifest["inputs"])
    assert statuses == {"ok": 3, "error": 1}
    # Layouts drawn per document from its content: two whole-document units, one document of
    # single pages, the same draw in every interrupted run.
    assert manifest["counts"]["units_by_layout"] == {"document": 2, "page": 2}

    # Every unit's request was sent, and none was sent twice except one the kill cut off: its
    # reply never arrived, so the resumed run asks again (at most one per generation slot).
    sent = Counter((cache / "sent.log").read_text().split())
    assert len(sent) == manifest["counts"]["units"]
    resent = {key for key, times in sent.items() if times > 1}
    assert resent <= cut_off and len(cut_off) <= 1, (resent, cut_off)
    assert max(sent.values()) <= 2

    # The same dataset as an uninterrupted run, file for file. It reads the interrupted runs'
    # replies: it asks no request they did not ask (sent.log unchanged), so the resumed run asked
    # exactly the requests of an uninterrupted one. (That the model writes the same replies in
    # another process is test_cluster.py's node-loss test: both runs there generate.)
    log = (cache / "sent.log").read_text()
    reference = tmp_path / "reference"
    finish(write_recipe(tmp_path, inputs, reference, cache))
    assert (cache / "sent.log").read_text() == log
    assert dataset_fingerprint(out) == dataset_fingerprint(reference)


def journaled_documents(journal: Path) -> set[str]:
    """Sources with at least one unit (not an error row) in the journal."""
    rows = chunk_rows(journal, ["source", "error_code"])
    return {r["source"] for r in rows if r["error_code"] is None}


class Interrupted(Exception):
    """Stands for a user's Ctrl-C: raised in the driver at a chosen point of a run."""


def test_a_file_changed_after_an_interruption_is_ingested_again(
    ray_local, one_pair_server, inputs: Path, tmp_path: Path
) -> None:
    """In this process (the session's Ray, `curation run` through CliRunner): a run stopped once
    a readable document's units are journaled, one of those documents edited, and the rerun
    ingests it again and drops its old units (the journal's own rules: test_journal.py). What
    is tested is the journal, not the replies: the model is a scripted OpenAI-compatible server
    (a FAKE standing in for vLLM: conftest's one_pair_server), so no run loads a model."""
    server = one_pair_server
    folder = tmp_path / "inputs"
    folder.mkdir()
    for name in ("lighthouse.pdf", "council.pdf"):  # two documents: three units
        shutil.copy(inputs / name, folder / name)
    out, cache = tmp_path / "changed", tmp_path / "cache"
    recipe = on_server(write_recipe(tmp_path, folder, out, cache), server.base_url)
    journal = out / ".journal"

    def interrupt_once_a_document_is_journaled(progress) -> None:
        if journaled_documents(journal):
            raise Interrupted

    with pytest.raises(Interrupted):
        run_recipe(load_recipe(recipe), on_progress=interrupt_once_a_document_is_journaled)
    assert not (out / "manifest.json").exists()
    changed = Path(sorted(journaled_documents(journal))[0])
    old_id = file_sha256(changed)[:16]
    with pymupdf.open(changed) as doc:  # the user edits it: one page left, new bytes
        doc.select([0])
        doc.save(changed.with_suffix(".tmp"), no_new_id=True)
    changed.with_suffix(".tmp").replace(changed)
    new_id = file_sha256(changed)[:16]

    result = curation_cli("run", str(recipe))
    assert result.exit_code == 0, result.output[-3000:]
    said = " ".join(result.output.split())  # the terminal wraps long lines
    assert (
        f"inputs changed since the interrupted run: ingested again, old units dropped: {changed}"
        in said
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["resumed"] is True
    assert manifest["resume"] == {"changed": [str(changed)], "removed": []}
    record = next(r for r in manifest["inputs"] if r["path"] == str(changed))
    assert record["doc_id"] == new_id and record["units"] == 1 and record["pages"] == 1
    # Its unit was generated again, and no row of the old bytes is left anywhere.
    doc_ids = [
        d
        for part in ("data", "rejects")
        for f in sorted((out / part).glob("*.parquet"))
        for d in pq.read_table(f)["doc_id"].to_pylist()
    ]
    assert new_id in doc_ids and old_id not in doc_ids

    # The same dataset as an uninterrupted run over the inputs as they are now (its replies
    # from the same reply cache: the same requests must have been asked).
    reference = tmp_path / "reference"
    asked = len(server.requests)
    run_recipe(
        load_recipe(on_server(write_recipe(tmp_path, folder, reference, cache), server.base_url))
    )
    assert len(server.requests) == asked  # every reply from the cache
    assert dataset_fingerprint(out) == dataset_fingerprint(reference)


def on_server(recipe: Path, base_url: str) -> Path:
    """The recipe with its model behind the OpenAI-compatible server at `base_url`."""
    spec = yaml.safe_load(recipe.read_text())
    spec["generate"].update(engine="openai", base_url=base_url)
    recipe.write_text(yaml.safe_dump(spec))
    return recipe
