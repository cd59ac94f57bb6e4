"""The `vllm` engine: vLLM's offline engine as a Ray Data stage (`ray.data.llm`), for GPU clusters.

Unlike `local` and `openai` it is not an in-process `Engine`: `build_vllm_stage` returns a Ray
Data processor that the pipeline applies to a dataset of rows. `request_row` turns a ChatRequest
into the row the processor reads, `result_from_row` turns the processor's output row back into an
EngineResult, so prompts, cache and parser stay shared with the other engines.

Needs the extra `[vllm]` (vLLM, and Ray's LLM dependencies) on GPU machines.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from collections.abc import Callable
from typing import Any, Protocol

import pyarrow as pa

from curation.config import ConfigError, GenerateConfig
from curation.generate.cache import ResponseCache, request_key
from curation.generate.engines.base import ChatRequest, EngineResult
from curation.generate.prompts import PromptRenderError
from curation.schema import OUTCOME_SCHEMA, wants_reply

# Our columns: Ray's vLLM stage writes its own `request_id` (an int), and it consumes
# `sampling_params`, so what result_from_row needs travels in columns of our own.
REQUEST_ID = "chat_request_id"
PREFILL = "chat_prefill"
MAX_TOKENS = "chat_max_tokens"
INFERENCE_ERROR = "__inference_error__"  # set by Ray when should_continue_on_error is on
# What result_from_row reads from an output row.
RESULT_COLUMNS = (
    REQUEST_ID,
    PREFILL,
    MAX_TOKENS,
    INFERENCE_ERROR,
    "generated_text",
    "num_generated_tokens",
    "num_input_tokens",
)

DEFAULT_ENGINE_KWARGS: dict[str, Any] = {
    # Units of one document share their page text at the start of the prompt.
    "enable_prefix_caching": True,
}


def request_row(request: ChatRequest) -> dict:
    """The row Ray's vLLM processor reads for one request (messages + sampling_params)."""
    messages = [dict(m) for m in request.messages]
    if request.prefill:
        # Ray's chat-template stage continues a final assistant message instead of opening one.
        messages.append({"role": "assistant", "content": request.prefill})
    if any(isinstance(m["content"], list) for m in messages):
        # One content type in every row: Arrow cannot hold a string here and a list there.
        messages = [{**m, "content": content_parts(m["content"])} for m in messages]
    sampling: dict[str, Any] = {
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "repetition_penalty": request.repetition_penalty,
        "seed": request.seed,
        "stop": list(request.stop),
    }
    if request.json_schema is not None:
        # As a JSON string (vLLM takes str or dict): rows with different schemas, or none, then
        # share one Arrow type instead of merging into a struct that no longer is the schema.
        sampling["structured_outputs"] = {"json": json.dumps(request.json_schema)}
    return {
        REQUEST_ID: request.request_id,
        PREFILL: request.prefill,
        MAX_TOKENS: request.max_tokens,
        "messages": messages,
        "sampling_params": sampling,
    }


def content_parts(content: str | list[dict]) -> list[dict]:
    """Message content as OpenAI content parts (a string becomes one text part)."""
    return content if isinstance(content, list) else [{"type": "text", "text": content}]


def result_from_row(row: dict) -> EngineResult:
    """The EngineResult for one output row of the vLLM processor (errors included)."""
    request_id = str(row[REQUEST_ID])
    error = row.get(INFERENCE_ERROR) or ""
    if error:
        return EngineResult(
            request_id=request_id, text="", finish_reason="error", error=f"vLLM: {error}"
        )
    generated = int(row.get("num_generated_tokens") or 0)
    # Ray's output has no finish reason: a reply that used its whole budget was cut off.
    finish = "length" if generated >= int(row[MAX_TOKENS]) else "stop"
    return EngineResult(
        request_id=request_id,
        text=(row.get(PREFILL) or "") + (row.get("generated_text") or ""),
        finish_reason=finish,
        prompt_tokens=int(row.get("num_input_tokens") or 0),
        completion_tokens=generated,
    )


def processor_config(cfg: GenerateConfig) -> dict[str, Any]:
    """Keyword arguments of `ray.data.llm.vLLMEngineProcessorConfig` for a recipe."""
    if cfg.model in ("", "bundled") or cfg.model.endswith(".gguf"):
        raise ConfigError(
            "generate.model: the vllm engine needs an HF model id or folder "
            f"(e.g. HuggingFaceTB/SmolLM2-1.7B-Instruct), not '{cfg.model}'"
        )
    config: dict[str, Any] = {
        "model_source": cfg.model,
        "engine_kwargs": {**DEFAULT_ENGINE_KWARGS, **cfg.engine_kwargs},
        "concurrency": cfg.workers,
        "batch_size": cfg.batch_size,
        # A request that fails becomes an error row with its reason; the run goes on.
        "should_continue_on_error": True,
    }
    if cfg.images:
        # Decodes the image_url parts of the messages for the model's processor.
        config["prepare_multimodal_stage"] = True
    return config


def build_vllm_stage(
    cfg: GenerateConfig,
    preprocess: Callable[[dict], dict],
    postprocess: Callable[[dict], dict],
) -> Callable:
    """The Ray Data processor running vLLM: call it on a dataset, get the postprocessed rows.

    `preprocess` maps an input row to one with `request_row`'s columns (plus any to carry
    through); `postprocess` gets those columns back with vLLM's output (see `result_from_row`).
    Rows that failed skip `postprocess` and keep `__inference_error__`.
    """
    try:
        from ray.data.llm import build_processor, vLLMEngineProcessorConfig
    except ImportError as exc:
        raise ConfigError(
            "generate.engine 'vllm' needs vLLM and Ray's LLM dependencies: "
            f"pip install 'curation[vllm]' on a GPU machine ({exc})"
        ) from exc
    config = vLLMEngineProcessorConfig(**processor_config(cfg))
    return build_processor(config, preprocess=preprocess, postprocess=postprocess)


class Generator(Protocol):
    """What VLLMRows needs of the generator (`curation.generate.QAGenerator`)."""

    model_name: str

    def request_for(self, unit: dict) -> ChatRequest: ...

    def unrendered(self, unit: dict, exc: PromptRenderError) -> EngineResult: ...

    def outcome(self, unit: dict, result: EngineResult | None) -> dict: ...


class VLLMRows:
    """Rows in and out of Ray's vLLM stage: a unit becomes a request row carrying the unit
    (pickled, so no unit column meets the stage's own), and comes back as an Outcome row.

    With `generate.cache`, a request already answered is not sent again: its row carries the
    stored reply and goes through the stage as a one-token placeholder (as ingest error rows
    do), and fresh replies are stored on the way out, as `CachedEngine` does for other engines.
    """

    UNIT = "curation_unit"
    CACHED = "curation_cached_reply"  # the stored reply (JSON) of an answered request, or None
    KEY = "curation_cache_key"
    CARRIED = (UNIT, CACHED, KEY)

    def __init__(self, generator: Generator, cache: ResponseCache | None) -> None:
        self.generator, self.cache = generator, cache

    @staticmethod
    def placeholder(unit: dict) -> ChatRequest:
        """A one-token request for a row whose reply is not needed from vLLM."""
        return ChatRequest(f"{unit['unit_id']}|-", [{"role": "user", "content": "-"}], 1)

    def request(self, unit: dict) -> dict:
        carried = {self.UNIT: pickle.dumps(unit), self.CACHED: None, self.KEY: None}
        if not wants_reply(unit):  # an ingest error or skipped unit rides along, ignored after
            return {**request_row(self.placeholder(unit)), **carried}
        try:
            request = self.generator.request_for(unit)
        except PromptRenderError as exc:  # nothing to send: rides along with its result
            result = self.generator.unrendered(unit, exc)
            carried[self.CACHED] = json.dumps(dataclasses.asdict(result), ensure_ascii=False)
            return {**request_row(self.placeholder(unit)), **carried}
        if self.cache is not None:
            key = request_key(self.generator.model_name, request)
            stored = self.cache.get(key)
            if stored is not None:
                stored = {**stored, "request_id": request.request_id}
                carried[self.CACHED] = json.dumps(stored, ensure_ascii=False)
                return {**request_row(self.placeholder(unit)), **carried}
            self.cache.log_sent([key])
            carried[self.KEY] = key
        return {**request_row(request), **carried}

    def outcomes(self, batch: pa.Table) -> pa.Table:
        rows = []
        for row in batch.to_pylist():
            unit = pickle.loads(row[self.UNIT])
            if not wants_reply(unit):
                result = None
            elif row.get(self.CACHED):
                result = EngineResult(**json.loads(row[self.CACHED]))
            else:
                result = result_from_row(row)
                if row.get(self.KEY) and self.cache and result.finish_reason != "error":
                    self.cache.put(row[self.KEY], dataclasses.asdict(result))
            rows.append(self.generator.outcome(unit, result))
        return pa.Table.from_pylist(rows, schema=OUTCOME_SCHEMA)
