"""The code's shape, kept: imports point down the layers, Ray stays in the modules that wire Ray,
functions stay short, and the typed records match their Arrow schemas.

The layers, from the bottom (a module may import its own layer and the layers below it):
0. shared helpers and contracts: config (and yamlfile, its reader), schema, seeding, files,
   jsonscan, models, tokens, hamming (the banded search for near hashes)
1. places: units, output folders (outdir), Ray start-up (runtime), writers (output/)
2. the stages' own work: ingest, generate (engines, prompts, parser, response cache)
3. filters (the judge is a generation client)
4. training, and what a run asks of a cluster (preflight, watchdog)
5. pipeline: the Ray Data graph, and what its workers run (workers)
6. run: a recipe's run around the graph; `curation filter` over a dataset on disk (refilter)
7. view: the offline browser of output folders (reads them; imports no stage)
8. entry points: the command line (its commands, and what it shows: display)
"""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

from curation import schema

PACKAGE = Path(__file__).resolve().parents[1] / "curation"

LAYERS: list[tuple[str, ...]] = [
    (
        "curation",
        "curation.config",
        "curation.yamlfile",
        "curation.schema",
        "curation.seeding",
        "curation.files",
        "curation.jsonscan",
        "curation.models",
        "curation.tokens",
        "curation.hamming",
    ),
    ("curation.units", "curation.outdir", "curation.runtime", "curation.output"),
    ("curation.ingest", "curation.generate"),
    ("curation.filters",),
    ("curation.train", "curation.preflight", "curation.watchdog"),
    ("curation.pipeline", "curation.workers"),
    ("curation.run", "curation.refilter", "curation.refilter_input"),
    ("curation.view",),
    ("curation.cli", "curation.display", "curation.__main__", "curation.train.__main__"),
]

# Modules that may import Ray: the graph, Ray start-up, what a run asks of the cluster, the
# whole-dataset dedup in Ray, vLLM's Ray Data stage, the multi-node training launcher.
RAY_MODULES = {
    "curation.pipeline",
    "curation.runtime",
    "curation.preflight",
    "curation.watchdog",
    "curation.filters.dedup_ray",
    "curation.generate.engines.vllm",
    "curation.train.launch",
}

MAX_LINES = 60
LONG_FUNCTIONS = {
    # One Ray Data program: its nested stage functions share the LSH settings it closes over.
    "curation/filters/dedup_ray.py:ray_near_duplicates",
    # The dataset card's Markdown, section by section: long, but one straight page of text.
    "curation/output/card.py:card_body",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The layer of a module: that of the longest entry naming it or a package above it."""
    best = (-1, -1)
    for index, entries in enumerate(LAYERS):
        for entry in entries:
            if module == entry or module.startswith(entry + "."):
                best = max(best, (len(entry), index))
    assert best[1] >= 0, f"{module} is in no layer: add it to LAYERS"
    return best[1]


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of the file, at the top or inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    for path in SOURCES:
        layer_of(module_name(path))


def test_imports_point_down_the_layers() -> None:
    upward = []
    for path in SOURCES:
        module = module_name(path)
        own = layer_of(module)
        for line, target in imports(path):
            if target.startswith("curation") and layer_of(target) > own:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert upward == []


# What the offline browser may read from: output folders and the contracts, no stage.
VIEW_READS = (
    "curation.view",
    "curation.output",
    "curation.schema",
    "curation.config",
    "curation.outdir",
    "curation.files",
)


def test_the_view_imports_no_stage() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}"
        for path in SOURCES
        if module_name(path).startswith("curation.view")
        for line, target in imports(path)
        if (target.startswith("curation.") and not target.startswith(VIEW_READS))
        or target.split(".")[0] == "ray"
    ]
    assert found == []


def test_a_worker_loads_only_its_own_stage() -> None:
    """What a Ray worker imports to unpickle its stage (`curation.workers`) loads no stage's
    package: each stage imports its own when it runs. Checked in a fresh interpreter."""
    stages = ["pymupdf", "curation.ingest", "curation.generate", "curation.filters"]
    probe = f"import sys, curation.workers; print([m for m in {stages!r} if m in sys.modules])"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"


def test_only_the_modules_that_wire_ray_import_it() -> None:
    found = {
        f"{module_name(path)}:{line}"
        for path in SOURCES
        for line, target in imports(path)
        if (target == "ray" or target.startswith("ray.")) and module_name(path) not in RAY_MODULES
    }
    assert found == set()


def test_functions_are_short() -> None:
    long = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                name = f"{path.relative_to(PACKAGE.parent)}:{node.name}"
                if lines > MAX_LINES and name not in LONG_FUNCTIONS:
                    long.append(f"{name} ({lines} lines)")
    assert long == []


def names(*records: type) -> list[str]:
    """The fields a record writes to its row (not those it keeps in memory only)."""
    return [
        f.name
        for record in records
        for f in dataclasses.fields(record)
        if f.metadata.get("row", True)
    ]


def test_records_match_their_arrow_schemas() -> None:
    assert names(schema.Unit) == schema.UNIT_SCHEMA.names
    assert names(schema.Unit, schema.Reply) == schema.OUTCOME_SCHEMA.names
    assert names(schema.Pair) == [f.name for f in schema.PAIR_TYPE]
    assert names(schema.Decision) == [f.name for f in schema.DECISION_TYPE]
    assert names(schema.Reject) == schema.REJECT_SCHEMA.names
    assert names(schema.InputError) == schema.ERROR_SCHEMA.names
