"""Output folders are never someone else's: every writing command (run, filter, export, train)
claims a folder that is new, empty or its own, holds a lock while it writes, and replaces only
the files it wrote. The lock is checked with real processes and a real SIGKILL."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pymupdf
import pytest
from conftest import LENIENT_CHAIN, ROOT, SAMPLES
from output_fixtures import build_output
from test_filter_cli import build_input, run_filter, says
from typer.testing import CliRunner

from curation.cli import app
from curation.outdir import LOCK, MARKER, OutputFolder

HOLDER = """
import sys
from collections.abc import Iterator
from pathlib import Path
from curation.outdir import OutputFolder
with OutputFolder(Path(sys.argv[1]), sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()
"""


def users_folder(folder: Path) -> dict[str, bytes]:
    """A folder of someone's own files, named as ours are (the case of the issue); its snapshot."""
    (folder / "data").mkdir(parents=True)
    (folder / "rejects").mkdir()
    (folder / "data" / "train-00000-of-00001.parquet").write_bytes(b"the user's own shard")
    (folder / "data" / "notes.txt").write_text("my notes\n")
    (folder / "rejects" / "keep.jsonl").write_text('{"mine": true}\n')
    (folder / "README.md").write_text("# my project\n")
    return snapshot(folder)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def filter_in_a_process(pairs: Path, chain: Path, out: Path) -> subprocess.CompletedProcess:
    args = ["filter", str(pairs), "--chain", str(chain), "--out", str(out)]
    return subprocess.run(
        [sys.executable, "-m", "curation", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def chain(tmp_path: Path) -> Path:
    path = tmp_path / "lenient.yaml"
    path.write_text(LENIENT_CHAIN)
    return path


@pytest.fixture
def pairs(tmp_path: Path) -> Path:
    return build_input("flat_jsonl", tmp_path)


def test_filter_refuses_a_folder_of_the_users_files_and_touches_none(tmp_path, chain, pairs):
    mine = tmp_path / "mine"
    before = users_folder(mine)
    result = run_filter(str(pairs), "--chain", str(chain), "--out", str(mine))
    assert result.exit_code == 2, result.output
    assert says(result, "holds files curation did not write (README.md, data, rejects)")
    assert snapshot(mine) == before
    assert not (mine / MARKER).exists() and not (mine / LOCK).exists()


def test_filter_refuses_the_working_folder_and_home(tmp_path, chain, pairs, monkeypatch):
    home, project = tmp_path / "home", tmp_path / "project"
    users_folder(home)
    before_home = snapshot(home)
    (project / "data" / "samples").mkdir(parents=True)
    (project / "data" / "samples" / "report.pdf").write_bytes(
        (SAMPLES / "water_utility_annual_report.pdf").read_bytes()
    )
    before_project = snapshot(project)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(project)
    for out in (".", os.path.expanduser("~")):  # `--out ~` as the shell expands it
        result = run_filter(str(pairs), "--chain", str(chain), "--out", out)
        assert result.exit_code == 2, result.output
        assert says(result, "choose a new or empty folder")
    assert snapshot(home) == before_home
    assert snapshot(project) == before_project


def test_filter_reruns_replace_only_its_own_files(tmp_path, chain, pairs):
    out = tmp_path / "out"
    assert run_filter(str(pairs), "--chain", str(chain), "--out", str(out)).exit_code == 0
    marker = json.loads((out / MARKER).read_text())
    assert marker["tool"] == "curation" and marker["command"] == "filter"
    assert not (out / LOCK).exists()  # released
    first_shards = sorted(p.name for p in (out / "data").glob("*.parquet"))

    # Someone keeps notes in our folder and in its data/: a rerun replaces the shards only.
    (out / "data" / "notes.txt").write_text("looked at these rows\n")
    (out / "analysis.csv").write_text("a,b\n")
    result = run_filter(str(pairs), "--chain", str(chain), "--out", str(out), "--batch-size", "3")
    assert result.exit_code == 0, result.output
    assert (out / "data" / "notes.txt").read_text() == "looked at these rows\n"
    assert (out / "analysis.csv").read_text() == "a,b\n"
    funnel = json.loads((out / "funnel.json").read_text())
    shards = sorted(p.name for p in (out / "data").glob("*.parquet"))
    assert shards == sorted(entry["file"] for entry in funnel["files"]["data"]) == first_shards
    assert json.loads((out / MARKER).read_text())["created"] == marker["created"]


def test_an_empty_folder_is_claimed_and_a_failed_start_leaves_nothing(tmp_path, chain, pairs):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_filter(str(pairs), "--chain", str(chain), "--out", str(empty)).exit_code == 0
    assert (empty / MARKER).exists() and any((empty / "data").glob("*.parquet"))

    new = tmp_path / "new" / "out"
    result = run_filter(str(pairs), "--chain", str(tmp_path / "missing.yaml"), "--out", str(new))
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "new").exists()


def test_a_folder_of_another_command_is_refused(tmp_path, chain, pairs):
    dataset = tmp_path / "dataset"
    build_output(dataset)
    exported = tmp_path / "exported"
    runner = CliRunner()
    made = runner.invoke(app, ["export", str(dataset), "--format", "llava", "--out", str(exported)])
    assert made.exit_code == 0, made.output
    before = snapshot(exported)

    result = run_filter(str(pairs), "--chain", str(chain), "--out", str(exported))
    assert result.exit_code == 2, result.output
    assert says(result, "holds the output of `curation export`")
    assert snapshot(exported) == before

    filtered = tmp_path / "filtered"
    assert run_filter(str(pairs), "--chain", str(chain), "--out", str(filtered)).exit_code == 0
    result = runner.invoke(
        app, ["export", str(dataset), "--format", "llava", "--out", str(filtered)]
    )
    assert result.exit_code == 2, result.output
    assert says(result, "holds the output of `curation filter`")


def test_export_refuses_the_users_folder_and_exports_again_into_its_own(tmp_path):
    dataset = tmp_path / "dataset"
    build_output(dataset)
    mine = tmp_path / "mine"
    (mine / "images").mkdir(parents=True)
    (mine / "images" / "cat.png").write_bytes(b"a cat")
    (mine / "train.json").write_text("[]\n")
    before = snapshot(mine)
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(dataset), "--format", "llava", "--out", str(mine)])
    assert result.exit_code == 2, result.output
    assert snapshot(mine) == before

    ours = tmp_path / "ours"
    for fmt in ("llava", "mantis"):
        result = runner.invoke(app, ["export", str(dataset), "--format", fmt, "--out", str(ours)])
        assert result.exit_code == 0, result.output
    assert (ours / "train.json").exists() and (ours / "train.jsonl").exists()


def test_train_refuses_the_users_folder(tmp_path):
    mine = tmp_path / "mine"
    before = users_folder(mine)
    result = CliRunner().invoke(
        app, ["train", str(ROOT / "train" / "tiny-cpu.yaml"), "--out", str(mine)]
    )
    assert result.exit_code == 2, result.output
    assert says(result, "holds files curation did not write")
    assert snapshot(mine) == before


def test_run_refuses_the_working_folder_that_holds_its_inputs(tmp_path, chain, monkeypatch):
    """`curation run --out .` where `data/samples` holds the run's own inputs."""
    (tmp_path / "data" / "samples").mkdir(parents=True)
    (tmp_path / "data" / "samples" / "report.pdf").write_bytes(
        (SAMPLES / "water_utility_annual_report.pdf").read_bytes()
    )
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"name: here\ninputs: [data/samples/*.pdf]\nfilters: {chain}\n")
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", str(recipe), "--out", "."])
    assert result.exit_code == 2, result.output
    assert says(result, "holds files curation did not write")
    assert snapshot(tmp_path) == before


def test_a_second_writer_fails_naming_the_holder_and_a_stale_lock_is_taken_over(
    tmp_path, chain, pairs
):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out), "filter"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = (out / LOCK).read_text()
        second = filter_in_a_process(pairs, chain, out)
        assert second.returncode == 2, second.stderr
        told = "".join(second.stderr.split())
        assert f"PID{holder.pid}" in told and f"host{socket.gethostname()}" in told
        assert "started" in told
        assert (out / LOCK).read_text() == lock  # the holder's lock is untouched
        assert not (out / "data").exists()
    finally:
        holder.kill()  # SIGKILL: the lock stays behind, its process gone
        holder.wait(timeout=60)
    assert holder.returncode == -signal.SIGKILL
    assert json.loads((out / LOCK).read_text())["pid"] == holder.pid

    third = filter_in_a_process(pairs, chain, out)
    assert third.returncode == 0, third.stderr
    assert "took over the lock" in third.stderr and f"PID {holder.pid}" in third.stderr
    assert not (out / LOCK).exists()
    assert any((out / "data").glob("*.parquet"))


@contextlib.contextmanager
def run_holding(out: Path) -> Iterator[subprocess.Popen]:
    """A process that claims `out` for `curation run` and holds its lock while the block runs;
    then it finishes and releases the lock."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out), "run"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert holder.returncode == 0


def test_readers_never_take_the_lock(tmp_path):
    out = tmp_path / "dataset"
    with run_holding(out):
        build_output(out)  # as a run would have left it
        lock = (out / LOCK).read_text()
        stats = CliRunner().invoke(app, ["stats", str(out)])
        assert stats.exit_code == 0, stats.output
        assert (out / LOCK).read_text() == lock
    assert not (out / LOCK).exists()


def test_a_lock_is_released_when_the_work_fails(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), OutputFolder(out, "filter"):
        (out / "funnel.json").write_text("{}\n")
        raise RuntimeError("the work failed")
    assert not (out / LOCK).exists() and (out / MARKER).exists()


def test_a_claim_killed_before_its_marker_is_still_ours(tmp_path):
    """SIGKILL between taking the lock and writing the marker leaves only lock files."""
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(gone.stdout)
    lock = {"tool": "curation", "command": "filter", "host": socket.gethostname(), "pid": pid}
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK).write_text(json.dumps(lock))
    (out / f"{LOCK}.{pid}.tmp").write_text(json.dumps(lock))
    with OutputFolder(out, "filter") as claim:
        assert claim.took_over == lock
    assert (out / MARKER).exists() and not (out / LOCK).exists()


# ---- nothing under HOME before the claim ---------------------------------------------------------

# What a run may write under HOME, all after it claimed its folder (README "Where a run writes"):
# Ray's token for the local cluster it starts, matplotlib's font list for the card's plots.
DOCUMENTED_HOME = {".ray", ".ray/auth_token", ".cache", ".config"}
DOCUMENTED_HOME_FOLDERS = (".cache/matplotlib", ".config/matplotlib")

HOME_PROBE = """
import json, sys
from pathlib import Path

home = Path(sys.argv[1])


def report(step, **found):
    found["home"] = sorted(p.relative_to(home).as_posix() for p in home.rglob("*"))
    print(json.dumps({"step": step, **found}), flush=True)


import curation.run  # everything `curation run` imports before it claims its folder
import pymupdf
from curation.ingest.ocr import RapidOCRBackend

doc = pymupdf.open()
page = doc.new_page(width=300, height=60)
page.insert_text((10, 30), "Reservoir levels recovered quickly", fontsize=9)
report("ocr", text=RapidOCRBackend().recognize(page.get_pixmap(dpi=150).tobytes("png")).text)

from typer.testing import CliRunner
from curation.cli import app

for step, recipe in (("refused", sys.argv[2]), ("done", sys.argv[3])):
    result = CliRunner().invoke(app, ["run", recipe])
    report(step, code=result.exit_code, output=result.output)
"""


def empty_home(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An empty HOME and an environment that uses it (no XDG folders, telemetry not set: as a
    user's shell has them)."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "ORT_DISABLE_TELEMETRY" and not key.startswith("XDG_")
    }
    return home, {**env, "HOME": str(home)}


@pytest.mark.e2e
def test_a_process_writes_nothing_under_home_before_its_claim_and_then_only_known_caches(
    tmp_path,
):
    """One process of its own with an empty HOME, step by step: importing everything `curation
    run` imports and OCRing a page (onnxruntime, imported with pymupdf and by RapidOCR, would
    write a device id under ~/.cache/Microsoft/DeveloperTools and send telemetry); `curation
    run` refused (its folder holds a user's file); `curation run` over a scanned page (OCR'd).
    The model is a scripted OpenAI-compatible server (a FAKE standing in for vLLM:
    tests/scripted_server.py)."""
    from scripted_server import scripted_server

    home, env = empty_home(tmp_path)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    doc = pymupdf.open()
    page = doc.new_page(width=300, height=60)
    page.insert_text((10, 30), "Reservoir levels recovered quickly", fontsize=9)
    page.get_pixmap(dpi=200).save(inputs / "scan.png")
    doc.close()
    (tmp_path / "lenient.yaml").write_text(LENIENT_CHAIN)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes\n")

    reply = "Q1: What recovered?\nA1: Reservoir levels."
    with scripted_server(lambda messages: reply) as server:
        recipes = []
        for out in (mine, tmp_path / "out"):
            recipe = tmp_path / f"{out.name}.yaml"
            recipe.write_text(
                f"name: home\ninputs: [{str(inputs / '*.png')!r}]\n"
                f"filters: {tmp_path}/lenient.yaml\n"
                f"generate: {{engine: openai, base_url: {server.base_url!r}, pairs_per_unit: 1, "
                f"max_tokens: 32, cache_dir: {str(tmp_path / 'cache' / 'responses')!r}}}\n"
                f"output: {{dir: {str(out)!r}}}\n"
            )
            recipes.append(str(recipe))
        result = subprocess.run(
            [sys.executable, "-c", HOME_PROBE, str(home), *recipes],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        steps = {
            step["step"]: step
            for line in result.stdout.splitlines()
            if line.startswith('{"step"')
            for step in [json.loads(line)]
        }
        assert len(server.requests) == 1
    assert "reservoir levels" in steps["ocr"]["text"].lower()  # a page was OCR'd
    assert steps["ocr"]["home"] == []
    refused = steps["refused"]
    assert refused["code"] == 2, refused["output"][-3000:]
    assert "holds files curation did not write" in " ".join(refused["output"].split())
    assert refused["home"] == []
    done = steps["done"]
    assert done["code"] == 0, done["output"][-3000:]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"]["pages_by_text_source"] == {"ocr": 1}
    unknown = {
        path
        for path in done["home"]
        if path not in DOCUMENTED_HOME and not path.startswith(DOCUMENTED_HOME_FOLDERS)
    }
    assert unknown == set()
