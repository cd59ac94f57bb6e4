"""The `openai` engine against a real vLLM OpenAI server (vLLM's CPU build, the bundled model's
converted folder, started by the test), and vLLM's greedy replies beside the `local` engine's
on the same requests: same model folder, same chat template, float32 on both sides."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator

import pytest
from conftest import ROOT
from serve_fixtures import bundled_model_folder
from vllm_fixtures import MARKS, VLLMServer

from curation.config import GenerateConfig, UnitsConfig
from curation.generate import QAGenerator
from curation.generate.engines.local import LocalEngine
from curation.generate.engines.openai import OpenAIEngine

pytestmark = MARKS

# Where the greedy comparison is written (`make test-vllm` prints it).
REPORT = ROOT / ".cache" / "test-vllm" / "greedy-vllm-vs-local.md"

TEXTS = [
    "The Harbour Point lighthouse was built in 1871 from local granite. Its lamp burned whale "
    "oil until 1902, when a kerosene burner replaced it.",
    "The city council met on 4 March. Members approved a budget of 2.4 million euros for road "
    "repairs and a new cycle lane on River Street.",
    "Charge the e-bike battery for four hours before the first ride. A full charge gives about "
    "60 km of assisted riding in eco mode.",
    "Check the tyre pressure every week: 3.5 bar for the front wheel and 4 bar for the rear.",
]


def unit(index: int) -> dict:
    return {
        "unit_id": f"doc{index}:0",
        "doc_id": f"doc{index}",
        "source": f"doc{index}.pdf",
        "kind": "document",
        "doc_pages": 1,
        "doc_units": 1,
        "pages": [0],
        "texts": [TEXTS[index]],
        "text_sources": ["layer"],
        "ocr_scores": [None],
        "images": [b""],
        "error_code": None,
        "error": None,
    }


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    server = VLLMServer(bundled_model_folder(), tmp_path_factory.mktemp("vllm") / "server.log")
    server.start(timeout_s=600)  # ~45 s on 2 free cores; far more on a loaded machine
    yield server
    server.stop()


def test_the_openai_engine_generates_pairs_on_a_vllm_server(vllm_server: VLLMServer) -> None:
    """Sampled (temperature 0.3, a seed per unit: the CPU runner needs chunked prefill off for
    that), through the product's generator: every unit gets a readable reply."""
    cfg = GenerateConfig(
        engine="openai",
        model=vllm_server.model_id,
        base_url=vllm_server.base_url,
        pairs_per_unit=2,
        max_tokens=96,
        cache=False,
    )
    generator = QAGenerator(cfg, UnitsConfig(), ROOT / "prompts")
    outcomes = generator([unit(i) for i in range(len(TEXTS))])
    assert [o["finish_reason"] for o in outcomes if o["finish_reason"] == "error"] == []
    assert all(o["raw_reply"] for o in outcomes)
    assert sum(len(o["pairs"]) for o in outcomes) > 0, [o["raw_reply"] for o in outcomes]
    assert {o["model"] for o in outcomes} == {vllm_server.model_id}


def test_greedy_replies_of_vllm_and_the_local_engine(vllm_server: VLLMServer) -> None:
    """The same greedy requests (the generator's prompts, prefill continued on both sides) to
    vLLM and to the local engine (transformers): the difference is written to REPORT. Both
    run the same float32 weights; kernels differ, so a reply may leave the other's path once
    two tokens are near-tied, and then the rest differs. Asserted: every reply is readable on
    both sides and most replies start the same."""
    cfg = GenerateConfig(
        model="bundled", temperature=0.0, repetition_penalty=1.0, max_tokens=64, cache=False
    )
    generator = QAGenerator(cfg, UnitsConfig(), ROOT / "prompts")
    requests = [generator.request_for(unit(i)) for i in range(len(TEXTS))]
    served = OpenAIEngine(
        vllm_server.model_id, base_url=vllm_server.base_url, continue_prefill=True
    ).generate(requests)
    local = LocalEngine("bundled", batch_size=len(requests), dtype="float32").generate(requests)

    rows = []
    for request, a, b in zip(requests, served, local, strict=True):
        assert a.finish_reason != "error" and b.finish_reason != "error", (a, b)
        words_a, words_b = a.text.split(), b.text.split()
        prefix = next(
            (i for i, (x, y) in enumerate(zip(words_a, words_b, strict=False)) if x != y),
            min(len(words_a), len(words_b)),
        )
        ratio = difflib.SequenceMatcher(None, a.text, b.text).ratio()
        rows.append(
            {
                "request": request.request_id,
                "same": a.text == b.text,
                "common_prefix_words": prefix,
                "words": [len(words_a), len(words_b)],
                "char_similarity": round(ratio, 3),
                "vllm": a.text,
                "local": b.text,
            }
        )
    same = sum(r["same"] for r in rows)
    lines = [
        "# Greedy replies: vLLM (CPU, OpenAI server) vs the local engine (transformers)",
        "",
        f"{same} of {len(rows)} replies identical; mean character similarity "
        f"{sum(r['char_similarity'] for r in rows) / len(rows):.3f}.",
        "",
        "| request | identical | common prefix (words) | words vLLM / local | similarity |",
        "|---|---|---|---|---|",
        *[
            f"| {r['request'].replace('|', '/')} | {r['same']} | {r['common_prefix_words']} | "
            f"{r['words'][0]} / {r['words'][1]} | {r['char_similarity']} |"
            for r in rows
        ],
        "",
        "```json",
        json.dumps(rows, indent=1, ensure_ascii=False),
        "```",
    ]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[: 10 + len(rows)]))
    starting_alike = [r for r in rows if r["common_prefix_words"] >= 3 or r["same"]]
    assert len(starting_alike) * 2 >= len(rows), REPORT.read_text()
