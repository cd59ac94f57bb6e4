"""The rows the pipeline sends through Ray's vLLM stage and reads back (vLLM is not installed in
the main virtualenv: the stage's output rows are built by hand, named as such; tests/vllm_cpu/ runs
the real stage from .venv-vllm)."""

from __future__ import annotations

import base64
import io
import pickle

import pyarrow as pa
import pytest
from conftest import ROOT, write_prompt
from PIL import Image

from curation.config import Recipe
from curation.generate.engines.vllm import (
    INFERENCE_ERROR,
    RESULT_COLUMNS,
    VLLMRows,
    output_columns,
)
from curation.pipeline import vllm_rows
from curation.schema import OUTCOME_SCHEMA
from curation.units import error_row


def unit(first: int) -> dict:
    pages = [first, first + 1]
    return {
        "unit_id": f"doc:{first}-{first + 1}",
        "doc_id": "doc",
        "source": "doc.pdf",
        "kind": "document",
        "doc_pages": 4,
        "doc_units": 2,
        "pages": pages,
        "texts": [f"Page {p + 1}: the pump station moved {p * 10} litres." for p in pages],
        "text_sources": ["layer", "layer"],
        "ocr_scores": [None, None],
        "images": [b"\x89PNG fake", b"\x89PNG fake"],
        "error_code": None,
        "error": None,
    }


def vllm_output(row: dict, text: str | None, error: str | None = None) -> dict:
    """What the vLLM stage hands back for a request row (built by hand: no GPU here)."""
    out = {key: row.get(key) for key in RESULT_COLUMNS}
    out.update(
        {
            "generated_text": text,
            "num_generated_tokens": 12,
            "num_input_tokens": 80,
            INFERENCE_ERROR: error,
            **{column: row[column] for column in VLLMRows.CARRIED},
        }
    )
    return out


def test_units_round_trip_through_vllm_rows() -> None:
    recipe = Recipe(
        name="v",
        inputs=["x"],
        generate={"engine": "vllm", "model": "Qwen/Qwen2.5-7B-Instruct", "cache": False},
    )
    rows = vllm_rows(recipe, ROOT / "prompts")
    units = [unit(0), unit(2), error_row("bad", "bad.pdf", "corrupt", "cannot open")]
    requests = [rows.request(u) for u in units]
    assert requests[0]["messages"][-1] == {"role": "assistant", "content": "Q1:"}  # prefill
    assert pickle.loads(requests[1][VLLMRows.UNIT])["unit_id"] == "doc:2-3"
    assert requests[0]["sampling_params"]["seed"] != requests[1]["sampling_params"]["seed"]

    outputs = [
        vllm_output(requests[0], " What moved?\nA1: Ten litres."),
        vllm_output(requests[1], None, error="CUDA out of memory"),
        vllm_output(requests[2], "ignored"),
    ]
    table = pa.Table.from_pylist(outputs)
    outcomes = rows.outcomes(table)
    assert outcomes.schema == OUTCOME_SCHEMA
    first, failed, ingest_error = outcomes.to_pylist()
    assert [(p["question"], p["answer"]) for p in first["pairs"]] == [
        ("What moved?", "Ten litres.")
    ]
    assert first["model"] == "Qwen/Qwen2.5-7B-Instruct" and first["prompt_id"].startswith("docm")
    assert failed["pairs"] == [] and "CUDA out of memory" in failed["parse_errors"][0]
    assert ingest_error["error_code"] == "corrupt" and ingest_error["raw_reply"] is None


def test_what_the_pipeline_hands_ray_pickles_and_builds_the_same_rows(tmp_path) -> None:
    """Ray ships the stage's functions to its workers: the rows travel as plain data (the
    prompt library's jinja2 templates do not pickle), and the copy builds the very rows."""
    import ray.cloudpickle

    recipe = Recipe(
        name="v",
        inputs=["x"],
        generate={"engine": "vllm", "model": "m/7b", "cache": True, "cache_dir": str(tmp_path)},
    )
    rows = vllm_rows(recipe, ROOT / "prompts")
    copy = pickle.loads(pickle.dumps(rows))
    request, outcomes, postprocess = (
        ray.cloudpickle.loads(ray.cloudpickle.dumps(fn))
        for fn in (rows.request, rows.outcomes, output_columns)
    )
    units = [unit(0), unit(2), error_row("bad", "bad.pdf", "corrupt", "cannot open")]
    expected = [rows.request(u) for u in units]
    assert [copy.request(u) for u in units[1:]] == expected[1:]  # the first one is now cached
    first = request(units[0])
    assert first[VLLMRows.KEY] == expected[0][VLLMRows.KEY] and first["messages"]
    out = pa.Table.from_pylist(
        [postprocess(vllm_output(expected[1], " What moved?\nA1: Ten litres."))]
    )
    [outcome] = outcomes(out).to_pylist()
    assert outcome["unit_id"] == "doc:2-3" and outcome["pairs"][0]["answer"] == "Ten litres."


def test_a_prompt_that_fails_for_one_unit_rides_through_vllm_as_its_reject(tmp_path) -> None:
    """A template branch only a real unit reaches (the sandbox refuses it): that unit's row
    goes through the stage as a one-token placeholder, and comes out with the render error as
    its unreadable reply; the other unit is sent as usual."""
    body = "{% block system %}Ask.{% endblock %}{% block user %}{{ pages[0].text }}"
    body += "{% if 'Page 3' in pages[0].text %}{{ ''.__class__.__mro__ }}{% endif %}{% endblock %}"
    write_prompt(tmp_path / "shared", "branch", body)
    generate = {"engine": "vllm", "model": "m/7b", "cache": False}
    recipe = Recipe(
        name="v", inputs=["x"], generate={**generate, "prompt_set": str(tmp_path / "shared")}
    )
    rows = vllm_rows(recipe, ROOT / "prompts")
    plain, branch = [rows.request(u) for u in (unit(0), unit(2))]
    assert plain[VLLMRows.CACHED] is None and branch[VLLMRows.CACHED]
    assert branch["sampling_params"]["max_tokens"] == 1
    outputs = [vllm_output(plain, "Q1: What moved?\nA1: Ten litres."), vllm_output(branch, "-")]
    first, failed = rows.outcomes(pa.Table.from_pylist(outputs)).to_pylist()
    assert first["pairs"] and failed["pairs"] == [] and failed["finish_reason"] == "unrendered"
    assert failed["parse_errors"][0].startswith("prompt not rendered: ")
    assert "access to attribute '__class__' of 'str' object is unsafe" in failed["parse_errors"][0]


def test_answered_requests_are_not_sent_to_vllm_again(tmp_path) -> None:
    recipe = Recipe(
        name="v",
        inputs=["x"],
        generate={"engine": "vllm", "model": "m/7b", "cache": True, "cache_dir": str(tmp_path)},
    )
    units = [unit(0), unit(2)]

    first = vllm_rows(recipe, ROOT / "prompts")
    requests = [first.request(u) for u in units]
    assert all(r[VLLMRows.CACHED] is None and r[VLLMRows.KEY] for r in requests)
    outputs = [
        vllm_output(requests[0], " What moved?\nA1: Ten litres."),
        vllm_output(requests[1], None, error="CUDA out of memory"),  # errors are not stored
    ]
    before = first.outcomes(pa.Table.from_pylist(outputs)).to_pylist()

    again = vllm_rows(recipe, ROOT / "prompts")  # a rerun, e.g. after the cluster restarted
    requests = [again.request(u) for u in units]
    answered, failed = requests
    assert answered[VLLMRows.CACHED] and answered["sampling_params"]["max_tokens"] == 1
    assert failed[VLLMRows.CACHED] is None and failed["sampling_params"]["max_tokens"] > 1
    outputs = [
        vllm_output(answered, "placeholder reply, ignored"),
        vllm_output(failed, " Who counted?\nA1: The station."),
    ]
    after = again.outcomes(pa.Table.from_pylist(outputs)).to_pylist()
    assert (
        after[0]["pairs"] == before[0]["pairs"] and after[0]["raw_reply"] == before[0]["raw_reply"]
    )
    assert after[0]["prompt_id"] == before[0]["prompt_id"]
    assert [p["answer"] for p in after[1]["pairs"]] == ["The station."]

    sent = (tmp_path / "sent.log").read_text().split()
    assert len(sent) == 3 and len(set(sent)) == 2  # the failed request was sent twice, no other


def png(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 52), color).save(buffer, format="PNG")
    return buffer.getvalue()


def image_unit(first: int) -> dict:
    return {**unit(first), "images": [png("red"), png("blue")]}


def image_rows() -> list[dict]:
    """Request rows of two units with images, through Arrow (as Ray Data's blocks carry them)."""
    recipe = Recipe(
        name="v",
        inputs=["x"],
        generate={"engine": "vllm", "model": "m/vl", "images": True, "cache": False},
    )
    rows = vllm_rows(recipe, ROOT / "prompts")
    return pa.Table.from_pylist(
        [rows.request(image_unit(0)), rows.request(image_unit(2))]
    ).to_pylist()


def test_image_rows_give_rays_multimodal_stage_what_it_reads() -> None:
    """Ray 2.60's PrepareMultimodalStage reads one column, `messages`, in OpenAI chat format,
    and hands it to vLLM's chat parser, which takes `image_url` parts ({"url": ...}) in order.
    Known traps: an `images` key instead of `image` dropped images silently (ray #57978); a
    plain-string system prompt skipped image preparation (ray #56125)."""
    from ray.llm._internal.batch.stages.prepare_multimodal_stage import (
        PrepareMultimodalStage,
        PrepareMultimodalUDF,
    )

    stage = PrepareMultimodalStage(fn_constructor_kwargs={}, map_batches_kwargs={})
    assert set(stage.get_required_input_keys()) == {"messages"}
    for row, source in zip(image_rows(), (image_unit(0), image_unit(2)), strict=True):
        messages = row["messages"]
        assert all(isinstance(m["content"], list) for m in messages)  # one type in every row
        parts = [part for m in messages for part in m["content"]]
        images = [p for p in parts if p["type"] == "image_url"]
        sent = [base64.b64decode(p["image_url"]["url"].split(",", 1)[1]) for p in images]
        assert sent == source["images"]  # every page image, in page order
        labels = [parts[parts.index(p) - 1]["text"] for p in images]
        assert labels == [f"Page {n + 1}:" for n in source["pages"]]
        assert all(p["text"] for p in parts if p["type"] == "text")
        # The stage's own handling of system messages (when it formats them) keeps our text.
        udf = object.__new__(PrepareMultimodalUDF)
        system, rest = udf._extract_system_messages(messages)
        assert system[0]["content"] == messages[0]["content"][0]["text"] and len(rest) >= 1


@pytest.mark.vllm
def test_image_rows_through_the_real_multimodal_stage(tmp_path) -> None:
    """The real stage (vLLM installed, e.g. on a GPU machine: `pip install -e .[vllm]` then
    `pytest -m vllm tests/test_vllm_rows.py`) on a tiny VLM folder: every image is prepared."""
    pytest.importorskip("vllm")
    import asyncio

    from ray.llm._internal.batch.stages.prepare_multimodal_stage import PrepareMultimodalUDF

    from curation.train.config import RandomInitConfig
    from curation.train.model import random_init_model, random_init_processor

    spec = RandomInitConfig()
    processor = random_init_processor(spec)
    random_init_model(spec, processor).save_pretrained(tmp_path / "vlm")
    processor.save_pretrained(tmp_path / "vlm")
    udf = PrepareMultimodalUDF(
        data_column="__data",
        expected_input_keys=["messages"],
        model_config_kwargs={"model": str(tmp_path / "vlm")},
        chat_template_content_format="openai",
    )
    rows = [{**row, udf.IDX_IN_BATCH_COLUMN: i} for i, row in enumerate(image_rows())]

    async def prepared() -> list[dict]:
        return [out async for out in udf.udf(rows)]

    for out in asyncio.run(prepared()):
        assert len(out["multimodal_data"]["image"]) == 2
