"""Page images reach a real VLM: a tiny random-init Idefics3 (SmolVLM's architecture) saved as a
model folder by the test, loaded in-process by the `local` engine (AutoProcessor +
AutoModelForImageTextToText, as a user's SmolVLM or Qwen2-VL folder would be) and served by a
real `transformers serve` for the `openai` engine. Its words are noise; what is checked is that
every page image reaches the model's input, in order, after its label.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SAMPLES
from output_fixtures import TINY_MANIFEST
from pairs import filter_rows
from PIL import Image
from serve_fixtures import TransformersServer

from curation.config import GenerateConfig, IngestConfig, UnitsConfig, load_recipe
from curation.filters.chain import load_chain
from curation.generate import QAGenerator, image_parts
from curation.generate.engines.base import ChatRequest
from curation.generate.engines.local import LocalEngine
from curation.ingest import ingest_document
from curation.output.shards import DatasetWriter
from curation.schema import Outcome

TOKENS_PER_TILE = 4  # RandomInitConfig: 32 px tiles, 8 px patches, pixel shuffle 2


@pytest.fixture(scope="module")
def vlm_folder(tmp_path_factory) -> Path:
    from curation.train.config import RandomInitConfig
    from curation.train.model import random_init_model, random_init_processor

    spec = RandomInitConfig()
    processor = random_init_processor(spec)
    folder = tmp_path_factory.mktemp("models") / "tiny-vlm"
    random_init_model(spec, processor, seed=0).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def vlm(vlm_folder) -> LocalEngine:
    return LocalEngine(str(vlm_folder), batch_size=4)


def png(color: str, size: tuple[int, int] = (120, 160)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def request(index: int, pages: list[int], label: str = "Page") -> ChatRequest:
    images = [png(color) for color in ("red", "green", "blue")[: len(pages)]]
    content = [*image_parts(pages, images, label), {"type": "text", "text": "Ask a question."}]
    return ChatRequest(
        f"r{index}",
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": content}],
        max_tokens=8,
        temperature=0.3,
        top_p=0.9,
        seed=index,
        prefill="Q1:",
    )


def test_a_vlm_folder_gets_every_page_image_in_order_after_its_label(vlm) -> None:
    assert vlm.reads_images
    batch = [request(0, [0, 1, 2]), request(1, [4])]
    inputs = vlm.encode(batch)
    image_token = vlm.processor.image_token_id
    counts = [int((inputs["input_ids"][row] == image_token).sum()) for row in range(2)]
    assert counts[0] == 3 * counts[1] > 0  # three pages, three times one page's image tokens
    assert counts[1] % TOKENS_PER_TILE == 0
    assert inputs["pixel_values"].shape[0] == 2  # one row of tiles per request
    prompt = vlm.tokenizer.decode(inputs["input_ids"][0])
    labels = [prompt.index(f"Page {n}:") for n in (1, 2, 3)]
    assert labels == sorted(labels)
    # Each label is followed by its own image before the next label starts.
    for start, end in zip(labels, [*labels[1:], len(prompt)], strict=True):
        assert "<image>" in prompt[start:end]
    assert vlm.tokenizer.decode(inputs["input_ids"][1]).count("Page 5:") == 1


def test_a_vlm_reply_counts_the_image_tokens_it_read(vlm) -> None:
    one, three = vlm.generate([request(0, [0]), request(1, [0, 1, 2])])
    assert one.text.startswith("Q1:") and one.finish_reason in ("stop", "length")
    per_image = int(
        (vlm.encode([request(0, [0])])["input_ids"] == vlm.processor.image_token_id).sum()
    )
    # The same text around them, two more images: at least their image tokens more.
    assert three.prompt_tokens - one.prompt_tokens >= 2 * per_image


def test_a_text_only_model_says_it_drops_images(caplog) -> None:
    engine = LocalEngine("bundled", batch_size=1)
    assert not engine.reads_images
    with caplog.at_level(logging.WARNING):
        result = engine.generate([request(0, [0, 1])])[0]
    assert result.text and engine.images_dropped == 2
    assert "reads no images" in caplog.text


# One JSON-output prompt (as Leopard's chart prompt): `transformers serve` fails (HTTP 500) on a
# VLM request that has `stop` strings (it hands the processor to the stop criteria), and the
# line-format prompts send one.
JSON_PROMPT = """---
id: vlm/ask
output: json
---
{% block system %}Write {{ n_pairs }} question-answer pairs about the pages, as JSON.{% endblock %}
{% block user %}{% for page in pages %}Page {{ page.number }}: {{ page.text }}
{% endfor %}{% endblock %}
"""


def lighthouse_units() -> list[dict]:
    """The Unit rows of a 3-page sample PDF, ingested as a run ingests it (2-page windows)."""
    ingest, units = IngestConfig(dpi=40), UnitsConfig(pages_per_unit=2)
    rows = list(ingest_document(SAMPLES / "lighthouse_history.pdf", ingest, units))
    assert rows and all(row["error_code"] is None for row in rows)
    return rows


def generate_and_count(tmp_path: Path, name: str, generate: dict) -> tuple[dict, list[dict]]:
    """The sample's units through QAGenerator (the run's generate stage, in this process) and
    DatasetWriter (its assembly): the manifest's counts and the Outcome rows."""
    config = GenerateConfig(
        **{"prompt_set": "docmatix", "max_tokens": 16, "batch_size": 2, "cache": False, **generate}
    )
    outcomes = QAGenerator(config, UnitsConfig(pages_per_unit=2), ROOT / "prompts")(
        lighthouse_units()
    )
    writer = DatasetWriter(tmp_path / f"out-{name}", 10, [str(SAMPLES / "lighthouse_history.pdf")])
    for outcome in outcomes:
        writer.add(Outcome.from_row(outcome))
    manifest = writer.close(TINY_MANIFEST)
    assert manifest["counts"]["units"] == len(outcomes) > 0
    return manifest, outcomes


def assert_images_arrived(with_images: list[dict], without: list[dict]) -> None:
    """The same requests (same units, same prompt text), the first with the pages' images:
    each read at least the image tokens of two tiles more."""
    assert [r["prompt_id"] for r in with_images] == [r["prompt_id"] for r in without]
    for seen, text_only in zip(with_images, without, strict=True):
        assert seen["images_sent"] == len(seen["pages"]) > 0 and text_only["images_sent"] == 0
        assert seen["prompt_tokens"] - text_only["prompt_tokens"] >= 2 * TOKENS_PER_TILE


def test_a_run_with_images_sends_the_page_images_to_the_local_vlm(vlm_folder, tmp_path) -> None:
    engine = {"engine": "local", "model": str(vlm_folder)}
    sent, with_images = generate_and_count(tmp_path, "images", {**engine, "images": True})
    plain, without = generate_and_count(tmp_path, "text", {**engine, "images": False})
    assert all(r["raw_reply"].startswith("Q1:") for r in with_images)  # the prompt's prefill
    assert_images_arrived(with_images, without)
    # The manifest counts the images sent and the prompt tokens the model read.
    assert sent["counts"]["images_sent"] == sent["counts"]["pages"] > 0
    assert plain["counts"]["images_sent"] == 0
    assert sent["counts"]["prompt_tokens"] == sum(r["prompt_tokens"] for r in with_images)
    assert sent["counts"]["prompt_tokens"] > plain["counts"]["prompt_tokens"]


@pytest.mark.e2e
def test_a_run_with_images_sends_the_page_images_through_transformers_serve(
    vlm_folder, tmp_path
) -> None:
    """`engine: openai` against a real `transformers serve` of the VLM folder: the server's
    usage counts the prompt tokens its processor made, image tokens included."""
    prompts = tmp_path / "prompts" / "vlm"
    prompts.mkdir(parents=True)
    (prompts / "ask.j2").write_text(JSON_PROMPT)
    server = TransformersServer(vlm_folder, tmp_path / "serve.log")
    server.start(timeout_s=600)
    engine = {
        "engine": "openai",
        "model": server.model_id,
        "base_url": server.base_url,
        "prompt_set": str(prompts),
    }
    try:
        _, with_images = generate_and_count(tmp_path, "served", {**engine, "images": True})
        _, without = generate_and_count(tmp_path, "served-text", {**engine, "images": False})
    finally:
        server.stop()
    assert server.requests_seen() == len(with_images) + len(without)
    errors = [e for r in with_images + without for e in r["parse_errors"] if "engine error" in e]
    assert not errors
    assert_images_arrived(with_images, without)


def test_the_leopard_vlm_example_runs_with_a_vlm_in_its_place(vlm_folder, tmp_path) -> None:
    """recipes/examples/leopard-vlm.yaml as shipped, with the tiny VLM in-process instead of its
    server (for generation and for its per-axis judge, through a chain that extends its own):
    the recipe and its chain load, every unit is asked with a Leopard prompt, and the chain,
    judge included, decides every pair (that images arrive is proven by the tests above)."""
    recipe = yaml.safe_load((ROOT / "recipes" / "examples" / "leopard-vlm.yaml").read_text())
    local = {"engine": "local", "model": str(vlm_folder), "batch_size": 2}
    chain = tmp_path / "chain.yaml"
    chain.write_text(
        yaml.safe_dump(
            {
                "name": "leopard-vlm-test",
                "extends": str(ROOT / recipe["filters"]),
                "filters": [
                    {
                        "type": "judge",
                        "prompt": "judge/axes",
                        "mode": "annotate",
                        "engine": {**local, "max_tokens": 16, "cache": False},
                    },
                ],
            }
        )
    )
    recipe.update(
        inputs=[str(SAMPLES / "lighthouse_history.pdf")],
        ingest={**recipe["ingest"], "dpi": 40},
        filters=str(chain),
        output={"dir": str(tmp_path / "out")},
    )
    recipe["generate"].update(local, max_tokens=32, cache=False)
    for key in ("base_url", "concurrency"):
        recipe["generate"].pop(key)
    path = tmp_path / "leopard-vlm.yaml"
    path.write_text(yaml.safe_dump(recipe))
    loaded = load_recipe(path)
    units = list(ingest_document(SAMPLES / "lighthouse_history.pdf", loaded.ingest, loaded.units))
    outcomes = QAGenerator(loaded.generate, loaded.units, ROOT / "prompts")(units)
    assert outcomes and all(o["prompt_id"].startswith("leopard/") for o in outcomes)
    assert all(o["images_sent"] == len(o["pages"]) for o in outcomes)
    decided = filter_rows(load_chain(str(chain)), outcomes)  # its chain, the judge on the VLM
    assert all(pair["decisions"] for outcome in decided for pair in outcome["pairs"])
