"""The `vllm` engine: vLLM's offline engine as a Ray Data stage (`ray.data.llm`), on GPU clusters
or, with vLLM's CPU build (`make setup-vllm`), on CPUs.

Unlike `local` and `openai` it is not an in-process `Engine`: `build_vllm_stage` returns a Ray
Data processor that the pipeline applies to a dataset of rows. `request_row` turns a ChatRequest
into the row the processor reads, `result_from_row` turns the processor's output row back into an
EngineResult, so prompts, cache and parser stay shared with the other engines.

Needs vLLM and Ray Data LLM: the extra `[vllm]` on GPU machines, `make setup-vllm` on CPUs.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from curation.config import ConfigError, GenerateConfig, UnitsConfig
from curation.generate.cache import ResponseCache, request_key
from curation.generate.engines.base import ChatRequest, EngineResult
from curation.generate.prompts import PromptRenderError
from curation.schema import OUTCOME_SCHEMA, wants_reply

if TYPE_CHECKING:
    from curation.generate import QAGenerator

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
# On CPUs (vLLM's CPU build): float32 (bfloat16 is 2-3x slower without AVX512-BF16, and gives
# other replies than the local engine's CPU default), eager mode (compiling adds minutes to each
# start), and no chunked prefill: every request carries a seed, and the CPU runner fails a seeded
# request whose prefill is split over steps ("CPU Generator does not use offset").
# Ray Data LLM's CPU-side stages around the engine (see processor_config).
CPU_LIGHT_STAGES = ("chat_template_stage", "tokenize_stage", "detokenize_stage")
CPU_ENGINE_KWARGS: dict[str, Any] = {
    "dtype": "float32",
    "enforce_eager": True,
    "enable_chunked_prefill": False,
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


def processor_config(cfg: GenerateConfig, on_cpu: bool = False) -> dict[str, Any]:
    """Keyword arguments of `ray.data.llm.vLLMEngineProcessorConfig` for a recipe: on GPUs
    Ray's default placement (a GPU per replica); `on_cpu` a CPU per replica and the CPU
    engine defaults. The recipe's engine_kwargs win over either default."""
    defaults = dict(DEFAULT_ENGINE_KWARGS)
    if on_cpu:
        # vLLM's CPU build reserves 92% of the node's memory unless told the KV cache's size:
        # half the replica's memory_gb (the weights and activations take the rest).
        kv_cache = int(cfg.memory_gb * 1024**3 / 2)
        defaults.update(CPU_ENGINE_KWARGS, kv_cache_memory_bytes=kv_cache)
    config: dict[str, Any] = {
        "model_source": model_source(cfg.model),
        "engine_kwargs": {**defaults, **cfg.engine_kwargs},
        "concurrency": cfg.workers,
        "batch_size": cfg.batch_size,
        # A request that fails becomes an error row with its reason; the run goes on.
        "should_continue_on_error": True,
    }
    if on_cpu:
        # Ray Data LLM takes no memory in a bundle: the replica's memory is its own concern.
        config["placement_group_config"] = {"bundles": [{"CPU": 1.0}], "strategy": "PACK"}
        # Its chat-template, tokenize and detokenize stages are actor pools that otherwise hold
        # a CPU each for the whole run: with the replica's CPU, more than a small node has, and
        # the run waited forever (as the model actors of the other engines, they ask none).
        for stage in CPU_LIGHT_STAGES:
            config[stage] = {"num_cpus": 0}
    if cfg.images:
        # Decodes the image_url parts of the messages for the model's processor.
        config["prepare_multimodal_stage"] = True
    return config


def model_source(model: str) -> str:
    """What vLLM loads for generate.model: an HF folder or Hub id as it is; the bundled model or
    a GGUF file as its converted HF folder (`curation.models.loadable`), made here, once."""
    if model not in ("", "bundled") and not model.endswith(".gguf"):
        return model
    if not model:
        raise ConfigError("generate.model: the vllm engine needs a model (an HF id or folder)")
    from curation.models import loadable, resolve_model

    location = loadable(resolve_model(model))
    if location.gguf_file is not None:  # the model cache could not be written
        raise ConfigError(
            f"generate.model '{model}': vLLM needs the converted HF folder, and the model cache "
            "could not be written (set CURATION_MODEL_CACHE to a writable folder)"
        )
    return location.path


def build_vllm_stage(
    cfg: GenerateConfig,
    preprocess: Callable[[dict], dict],
    postprocess: Callable[[dict], dict],
    on_cpu: bool = False,
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
            f"pip install 'curation[vllm]' on a GPU machine, `make setup-vllm` on CPUs ({exc})"
        ) from exc
    config = vLLMEngineProcessorConfig(**processor_config(cfg, on_cpu))
    return build_processor(config, preprocess=preprocess, postprocess=postprocess)


def output_columns(row: dict) -> dict:
    """The processor's postprocess: what `VLLMRows.outcomes` reads of an output row."""
    return {key: row.get(key) for key in (*RESULT_COLUMNS, *VLLMRows.CARRIED)}


class VLLMRows:
    """Rows in and out of Ray's vLLM stage: a unit becomes a request row carrying the unit
    (pickled, so no unit column meets the stage's own), and comes back as an Outcome row.

    Its methods run in Ray's workers, so it travels as plain data (the generate and units
    settings, the prompt set an absolute folder): the generator (whose prompt library holds
    jinja2 templates, which do not pickle) and the response cache are built where it is used.

    With `generate.cache`, a request already answered is not sent again: its row carries the
    stored reply and goes through the stage as a one-token placeholder (as ingest error rows
    do), and fresh replies are stored on the way out, as `CachedEngine` does for other engines.
    """

    UNIT = "curation_unit"
    CACHED = "curation_cached_reply"  # the stored reply (JSON) of an answered request, or None
    KEY = "curation_cache_key"
    CARRIED = (UNIT, CACHED, KEY)

    def __init__(self, generate: GenerateConfig, units: UnitsConfig) -> None:
        self.generate, self.units = generate, units
        self._generator: QAGenerator | None = None
        self._cache: ResponseCache | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"generate": self.generate, "units": self.units}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    @property
    def generator(self) -> QAGenerator:
        """The generator, built on first use (in the driver it checks every prompt renders)."""
        if self._generator is None:
            from curation.generate import QAGenerator

            self._generator = QAGenerator(self.generate, self.units)
        return self._generator

    @property
    def cache(self) -> ResponseCache | None:
        if self._cache is None and self.generate.cache:
            self._cache = ResponseCache(self.generate.cache_dir)
        return self._cache

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
