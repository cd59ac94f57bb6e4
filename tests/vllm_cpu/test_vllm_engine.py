"""The `vllm` engine for real: vLLM's CPU build as Ray Data LLM's stage, in a 2-document
`curation run` (`model: bundled`, the converted folder) that is interrupted once a document is
journaled and resumed: a loadable dataset with kept pairs, no request sent twice. The OCR stage
is on (as in the shipped recipes; these pages have text, so it OCRs none): with it, ingest is
not fused into Ray Data LLM's chat-template stage, whose actors then held a CPU each beside the
vLLM replica's, and the run waited forever on 2 CPUs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import LENIENT_CHAIN, SHORT_DOCUMENTS, curation_cli, make_pdf
from datasets import load_dataset
from vllm_fixtures import MARKS

from curation.config import load_recipe
from curation.run import run_recipe

pytestmark = MARKS

RECIPE = """
name: vllm-cpu
inputs: ["{inputs}/*.pdf"]
ingest: {{dpi: 72}}
units: {{pages_per_unit: 2, overlap: 0}}
generate:
  engine: vllm
  model: bundled
  pairs_per_unit: 2
  max_tokens: 128
  batch_size: 1
  seed: 3
  memory_gb: 2
  cache_dir: "{cache}"
  engine_kwargs: {{max_model_len: 4096}}
filters: {chain}
output: {{dir: "{out}", rows_per_shard: 1}}
"""

DOCUMENTS = {name: SHORT_DOCUMENTS[name] for name in ("lighthouse.pdf", "council.pdf")}


class Interrupted(Exception):
    """Stands for a user's Ctrl-C, raised in the driver once a document is journaled."""


def test_a_vllm_run_interrupted_and_resumed_sends_no_request_twice(
    ray_local, tmp_path: Path
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name, pages in DOCUMENTS.items():
        make_pdf(inputs / name, pages)
    chain = tmp_path / "lenient.yaml"
    chain.write_text(LENIENT_CHAIN)
    out, cache = tmp_path / "out", tmp_path / "cache"
    recipe = tmp_path / "vllm.yaml"
    recipe.write_text(RECIPE.format(inputs=inputs, chain=chain, out=out, cache=cache))
    journal = out / ".journal"

    def interrupt_once_a_unit_is_journaled(progress) -> None:
        if list(journal.glob("chunk-*.arrow")):
            raise Interrupted

    with pytest.raises(Interrupted):
        run_recipe(load_recipe(recipe), on_progress=interrupt_once_a_unit_is_journaled)
    assert not (out / "manifest.json").exists()
    sent = set((cache / "sent.log").read_text().split())
    cut_off = sent - {path.stem for path in cache.glob("*/*.json")}  # sent, never answered

    result = curation_cli("run", str(recipe))
    assert result.exit_code == 0, result.output[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["resumed"] is True
    counts = manifest["counts"]
    assert counts["units"] == 2 and counts["pairs_kept"] > 0, counts
    # Every unit's request was sent; none twice but one the interruption cut off.
    times = Counter((cache / "sent.log").read_text().split())
    assert len(times) == 2
    assert {key for key, n in times.items() if n > 1} <= cut_off and max(times.values()) <= 2

    rows = [
        r for f in sorted((out / "data").glob("*.parquet")) for r in pq.read_table(f).to_pylist()
    ]
    assert rows and all(meta["model"] == "bundled" for r in rows for meta in r["qa_meta"])
    dataset = load_dataset(
        "parquet",
        data_files=str(out / "data" / "*.parquet"),
        split="train",
        cache_dir=str(tmp_path / "hf"),
    )
    assert len(dataset) == len(rows) and dataset[0]["texts"]
    rejects = [
        r for f in sorted((out / "rejects").glob("*.parquet")) for r in pq.read_table(f).to_pylist()
    ]
    assert not [r for r in rejects if "vLLM" in (r["reason"] or "")], rejects
