"""The shipped prompt sets, filter chains and recipes are found from any working folder (the
current folder first, then the shipped copies), in the driver and in the workers, and a wheel of
curation carries them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import ROOT, SAMPLES, curation_cli, write_prompt
from scripted_server import scripted_server

from curation.config import load_recipe
from curation.filters.chain import FilterChain
from curation.generate.prompts import resolve_prompt_dir

SHIPPED = ("prompts", "filters", "recipes")


def test_shipped_files_are_found_from_another_folder_and_local_ones_come_first(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    assert resolve_prompt_dir("docmatix") == ROOT / "prompts" / "docmatix"
    assert resolve_prompt_dir("prompts/judge") == ROOT / "prompts" / "judge"
    assert load_recipe("recipes/docmatix.yaml").name == "docmatix"
    assert load_recipe("recipes/examples/long-document.yaml").generate.prompt_set == "typed"
    assert FilterChain.load("filters/default.yaml").name == "default"
    # A folder or file of the same name here wins over the shipped one.
    write_prompt(tmp_path / "prompts" / "docmatix", "mine", "{% block system %}s{% endblock %}")
    assert resolve_prompt_dir("docmatix") == tmp_path / "prompts" / "docmatix"
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "docmatix.yaml").write_text("name: mine\ninputs: ['*.pdf']\n")
    assert load_recipe("recipes/docmatix.yaml").name == "mine"


@pytest.mark.e2e
def test_a_run_from_another_folder_uses_the_shipped_prompts_and_chain(
    tmp_path, monkeypatch, ray_local
):
    """`curation run` started in a folder that has no prompts/ or filters/: the recipe names the
    shipped prompt set (`docmatix`) and chain (`filters/docmatix.yaml`) by their relative names,
    and its relative inputs and output folder are this folder's. The session's Ray workers run
    in another folder (the repository's), as a cluster's nodes do."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    shutil.copy(SAMPLES / "lighthouse_history.pdf", tmp_path / "docs")

    def reply(messages: list[dict]) -> str:
        return "Q1: What does the document describe?\nA1: The history of a lighthouse.\n"

    with scripted_server(reply) as server:
        Path("recipe.yaml").write_text(
            "name: elsewhere\n"
            "inputs: [docs/*.pdf]\n"
            "ingest: {dpi: 40}\n"
            f"generate: {{engine: openai, model: {server.model_id}, base_url: {server.base_url},"
            f" prompt_set: docmatix, cache_dir: {tmp_path / 'cache'}}}\n"
            "filters: filters/docmatix.yaml\n"
            "output: {dir: out/elsewhere}\n"
        )
        result = curation_cli("run", "recipe.yaml")
        requests = list(server.requests)
    assert result.exit_code == 0, result.output[-3000:]
    assert requests and all(
        r["messages"][0]["content"].startswith("You write question-answer pairs about a document")
        for r in requests
    )
    manifest = json.loads((tmp_path / "out" / "elsewhere" / "manifest.json").read_text())
    assert manifest["filter_chain"] == "docmatix" and manifest["counts"]["pairs_kept"] > 0
    shards = sorted((tmp_path / "out" / "elsewhere" / "data").glob("*.parquet"))
    rows = [row for shard in shards for row in pq.read_table(shard).to_pylist()]
    prompt_ids = {meta["prompt_id"] for row in rows for meta in row["qa_meta"]}
    assert prompt_ids and all(p.startswith("docmatix/") for p in prompt_ids)


def shipped_files(root: Path) -> set[str]:
    return {
        path.relative_to(root).as_posix()
        for folder in SHIPPED
        for path in (root / folder).rglob("*")
        if path.is_file()
    }


def test_the_wheel_carries_the_shipped_folders_and_finds_them_installed(tmp_path):
    """`pip wheel` of the package (pyproject.toml as it is, offline with the setuptools here):
    every module, the browser's files and every shipped prompt, chain and recipe are in it;
    installed (unpacked) and run from another folder, curation finds its shipped copies."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("curation", *SHIPPED):
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    build = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", str(source), "--no-deps"),
            *("--no-build-isolation", "--no-index", "--wheel-dir", tmp_path / "dist"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    # A data folder missing from `packages` still goes in, with a warning that it may not.
    assert "absent from the `packages` configuration" not in build.stdout + build.stderr
    (wheel,) = (tmp_path / "dist").glob("curation-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    code = {p.relative_to(ROOT).as_posix() for p in (ROOT / "curation").rglob("*.py")}
    code |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "curation/view/static").iterdir()}
    assert code <= names
    assert {n for n in names if n.startswith("curation/shipped/")} == {
        f"curation/shipped/{name}" for name in shipped_files(ROOT)
    }
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    check = (
        "from curation.config import SHIPPED_ROOT, load_recipe\n"
        "from curation.filters.chain import FilterChain\n"
        "from curation.generate.prompts import resolve_prompt_dir\n"
        "print(SHIPPED_ROOT, resolve_prompt_dir('docmatix'), load_recipe('recipes/slides.yaml')"
        ".name, FilterChain.load('filters/default.yaml').name)\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", check],
        cwd=elsewhere,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr[-3000:]
    shipped = tmp_path / "site" / "curation" / "shipped"
    assert found.stdout.split() == [
        str(shipped),
        str(shipped / "prompts/docmatix"),
        "slides",
        "default",
    ]
