"""The vllm engine's rows in and out of Ray's vLLM processor (vLLM itself needs a GPU machine)."""

from __future__ import annotations

import json

import pytest

from curation.config import ConfigError, GenerateConfig
from curation.generate.engines import build_engine
from curation.generate.engines.base import ChatRequest
from curation.generate.engines.vllm import (
    CPU_LIGHT_STAGES,
    INFERENCE_ERROR,
    build_vllm_stage,
    processor_config,
    request_row,
    result_from_row,
)
from curation.generate.parse import ReplySchema

SCHEMA = ReplySchema.model_json_schema(by_alias=False)


def chat(**kwargs) -> ChatRequest:
    fields = {
        "request_id": "unit-1|docmatix/general",
        "messages": [
            {"role": "system", "content": "You write questions."},
            {"role": "user", "content": "Page 1: The plant treats 40 ML a day."},
        ],
        "max_tokens": 64,
        "temperature": 0.3,
        "top_p": 0.9,
        "repetition_penalty": 1.1,
        "seed": 1234,
        "stop": ["\nQ5:"],
    }
    return ChatRequest(**{**fields, **kwargs})


def test_request_row_carries_sampling_params_and_our_columns():
    row = request_row(chat())
    assert row["messages"] == chat().messages
    assert row["sampling_params"] == {
        "max_tokens": 64,
        "temperature": 0.3,
        "top_p": 0.9,
        "repetition_penalty": 1.1,
        "seed": 1234,
        "stop": ["\nQ5:"],
    }
    assert row["chat_request_id"] == "unit-1|docmatix/general"
    assert row["chat_max_tokens"] == 64
    assert "request_id" not in row  # Ray's vLLM stage overwrites that column with its own int


def test_json_schema_becomes_structured_outputs():
    row = request_row(chat(json_schema=SCHEMA))
    structured = row["sampling_params"]["structured_outputs"]
    assert json.loads(structured["json"]) == SCHEMA
    assert "structured_outputs" not in request_row(chat())["sampling_params"]


def test_prefill_is_a_final_assistant_message_and_starts_the_text():
    request = chat(prefill="Q1:")
    row = request_row(request)
    assert row["messages"][-1] == {"role": "assistant", "content": "Q1:"}
    assert len(request.messages) == 2  # the request itself is not changed
    out = {**row, "generated_text": " What is treated?\nA1: Water.", "num_generated_tokens": 9}
    out.update(num_input_tokens=40, **{INFERENCE_ERROR: ""})
    result = result_from_row(out)
    assert result.text == "Q1: What is treated?\nA1: Water."
    assert (result.finish_reason, result.prompt_tokens, result.completion_tokens) == ("stop", 40, 9)
    assert result.request_id == "unit-1|docmatix/general"


def test_image_parts_make_every_message_content_a_list():
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}
    messages = [
        {"role": "system", "content": "You write questions."},
        {"role": "user", "content": [image, {"type": "text", "text": "Ask about page 1."}]},
    ]
    row = request_row(chat(messages=messages))
    assert row["messages"][0]["content"] == [{"type": "text", "text": "You write questions."}]
    assert row["messages"][1]["content"][0] == image


def test_result_from_row_reports_length_and_inference_errors():
    row = request_row(chat())
    full = result_from_row({**row, "generated_text": "Q1: a", "num_generated_tokens": 64})
    assert full.finish_reason == "length"
    failed = result_from_row({**row, INFERENCE_ERROR: "ValueError: prompt too long"})
    assert failed.finish_reason == "error"
    assert "prompt too long" in failed.error
    assert failed.request_id == "unit-1|docmatix/general"


def test_processor_config_merges_engine_kwargs_and_images():
    cfg = GenerateConfig(
        engine="vllm",
        model="HuggingFaceTB/SmolVLM-Instruct",
        workers=2,
        batch_size=32,
        images=True,
        engine_kwargs={"tensor_parallel_size": 2, "enable_prefix_caching": False},
    )
    config = processor_config(cfg)
    assert config["model_source"] == "HuggingFaceTB/SmolVLM-Instruct"
    assert config["engine_kwargs"] == {"tensor_parallel_size": 2, "enable_prefix_caching": False}
    assert (config["concurrency"], config["batch_size"]) == (2, 32)
    assert config["prepare_multimodal_stage"] is True
    assert config["should_continue_on_error"] is True
    text_only = processor_config(GenerateConfig(engine="vllm", model="/models/qwen"))
    assert text_only["engine_kwargs"] == {"enable_prefix_caching": True}
    assert "prepare_multimodal_stage" not in text_only


def test_gpu_config_keeps_rays_gpu_placement_and_vllms_own_defaults():
    """The GPU path (checked here by configuration only: no GPU machine has vLLM): no
    placement group of ours (Ray's default asks a GPU per replica), no CPU engine settings."""
    cfg = GenerateConfig(engine="vllm", model="/models/qwen", workers=2, memory_gb=30)
    config = processor_config(cfg)
    assert config == processor_config(cfg, on_cpu=False)
    assert "placement_group_config" not in config
    assert not any(stage in config for stage in CPU_LIGHT_STAGES)
    assert config["engine_kwargs"] == {"enable_prefix_caching": True}
    assert config["concurrency"] == 2


def test_cpu_config_asks_a_cpu_per_replica_and_the_cpu_engine_settings():
    cfg = GenerateConfig(engine="vllm", model="/models/qwen", workers=2, memory_gb=6)
    config = processor_config(cfg, on_cpu=True)
    assert config["placement_group_config"] == {
        "bundles": [{"CPU": 1.0}],
        "strategy": "PACK",
    }
    assert config["engine_kwargs"] == {
        "enable_prefix_caching": True,
        "dtype": "float32",
        "enforce_eager": True,
        "enable_chunked_prefill": False,  # every request carries a seed
        "kv_cache_memory_bytes": 3 * 1024**3,  # half of memory_gb, not 92% of the node
    }
    assert config["concurrency"] == 2
    # Ray Data LLM's actor stages around the engine hold no CPU (two of them and the replica
    # took more than a 2-CPU node has: the run waited forever).
    assert [config[stage] for stage in CPU_LIGHT_STAGES] == [{"num_cpus": 0}] * 3
    # The recipe's engine_kwargs win over the CPU defaults.
    tuned = cfg.model_copy(update={"engine_kwargs": {"dtype": "bfloat16", "max_model_len": 2048}})
    kwargs = processor_config(tuned, on_cpu=True)["engine_kwargs"]
    assert (kwargs["dtype"], kwargs["max_model_len"], kwargs["enforce_eager"]) == (
        "bfloat16",
        2048,
        True,
    )


def test_processor_config_names_only_real_fields_of_rays_config():
    processor = pytest.importorskip("ray.llm._internal.batch.processor.vllm_engine_proc")
    cfg = GenerateConfig(engine="vllm", model="/models/qwen", images=True)
    config = processor.vLLMEngineProcessorConfig(**processor_config(cfg))
    assert config.model_source == "/models/qwen"
    on_cpu = processor.vLLMEngineProcessorConfig(**processor_config(cfg, on_cpu=True))
    assert on_cpu.placement_group_config["bundles"][0]["CPU"] == 1.0
    assert on_cpu.tokenize_stage == {"num_cpus": 0}


def test_a_missing_gguf_model_is_refused_for_vllm_naming_the_field(tmp_path):
    """A GGUF model (the bundled one too) goes to vLLM as its converted HF folder; one that is
    not there is a config error."""
    missing = GenerateConfig(engine="vllm", model=str(tmp_path / "none.gguf"))
    with pytest.raises(ConfigError, match=r"generate\.model"):
        processor_config(missing)
    with pytest.raises(ConfigError, match=r"generate\.model"):
        processor_config(GenerateConfig(engine="vllm", model=""))


def test_build_engine_points_vllm_to_the_ray_stage():
    with pytest.raises(ConfigError, match="Ray Data stage"):
        build_engine(GenerateConfig(engine="vllm", model="/models/qwen"))


def test_build_vllm_stage_without_its_dependencies_names_the_extra():
    try:
        import ray.data.llm  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"curation\[vllm\]"):
            build_vllm_stage(GenerateConfig(engine="vllm", model="/models/qwen"), dict, dict)
    else:
        pytest.skip("ray.data.llm imports here: building the stage would start Ray and vLLM")
