"""A recipe switched to `engine: openai` builds the same kind of dataset through a real
`transformers serve` (the bundled SmolLM2 on CPU), with the real CLI and Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pymupdf
import pytest
import yaml
from conftest import LENIENT_CHAIN, ROOT, SAMPLES, curation_cli

pytestmark = pytest.mark.e2e


def test_leopard_recipe_on_an_openai_server(serve_server, ray_local, tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    with pymupdf.open(SAMPLES / "water_utility_annual_report.pdf") as doc:
        doc.select([0, 1])
        doc.save(inputs / "report.pdf", no_new_id=True)
    chain = tmp_path / "lenient.yaml"
    chain.write_text(LENIENT_CHAIN)
    recipe = yaml.safe_load((ROOT / "recipes" / "leopard-multipage.yaml").read_text())
    recipe["inputs"] = [str(inputs / "*.pdf")]
    recipe["ingest"] = {"dpi": 72, "ocr": "never"}
    recipe["generate"].update(
        engine="openai",
        model=serve_server.model_id,
        base_url=serve_server.base_url,
        pairs_per_unit=2,
        max_tokens=96,
        concurrency=2,
        cache_dir=str(tmp_path / "cache"),
    )
    recipe["filters"] = str(chain)
    recipe["output"] = {"dir": str(tmp_path / "out")}
    path = tmp_path / "leopard-openai.yaml"
    path.write_text(yaml.safe_dump(recipe))

    result = curation_cli("run", str(path))
    assert result.exit_code == 0, result.output[-3000:]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"]["units"] == 1
    rejects = [
        row
        for f in sorted((tmp_path / "out" / "rejects").glob("*.parquet"))
        for row in pq.read_table(f).to_pylist()
    ]
    assert not [r for r in rejects if "engine error" in (r["reason"] or "")]
    assert manifest["counts"]["pairs_generated"] > 0
    rows = [
        row
        for f in sorted((tmp_path / "out" / "data").glob("*.parquet"))
        for row in pq.read_table(f).to_pylist()
    ]
    assert rows and len(rows[0]["images"]) == 2
    meta = rows[0]["qa_meta"][0]
    assert meta["model"] == serve_server.model_id
    assert meta["prompt_id"].startswith("leopard/")
