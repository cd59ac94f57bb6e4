"""Generation engines behind one interface."""

from __future__ import annotations

from curation.config import ConfigError, GenerateConfig
from curation.generate.engines.base import ChatRequest, Engine, EngineResult

__all__ = ["ChatRequest", "DeferredEngine", "Engine", "EngineResult", "build_engine"]


class DeferredEngine(Engine):
    """The `local` engine, its model loaded at the first request that reaches it: behind the
    response cache, a rerun or resumed run whose replies are all stored never loads the model
    (seconds, and gigabytes for a real one). Its name, which keys the cache, needs no model."""

    def __init__(self, cfg: GenerateConfig) -> None:
        from curation.generate.engines.local import local_model_name

        self.cfg = cfg
        self.model_name = local_model_name(cfg.model, cfg.dtype)
        self.engine: Engine | None = None

    def generate(self, requests: list[ChatRequest]) -> list[EngineResult]:
        if self.engine is None:
            self.engine = build_engine(self.cfg)
            assert self.engine.model_name == self.model_name, (self.engine.model_name, self)
        return self.engine.generate(requests)


def build_engine(cfg: GenerateConfig) -> Engine:
    """The engine a recipe's `generate` section names, with its model loaded."""
    if cfg.engine == "local":
        from curation.generate.engines.local import LocalEngine

        return LocalEngine(
            cfg.model, batch_size=cfg.batch_size, threads=cfg.threads, dtype=cfg.dtype
        )
    if cfg.engine == "openai":
        from curation.generate.engines.openai import OpenAIEngine

        return OpenAIEngine(
            cfg.model,
            base_url=cfg.base_url,
            api_key_env=cfg.api_key_env,
            concurrency=cfg.concurrency,
            timeout_s=cfg.timeout_s,
            max_retries=cfg.max_retries,
        )
    if cfg.engine == "vllm":
        raise ConfigError(
            "generate.engine 'vllm' runs as a Ray Data stage (ray.data.llm, see "
            "curation.generate.engines.vllm.build_vllm_stage), not as an in-process engine; "
            "use 'local' or 'openai' here, or run the recipe through the pipeline"
        )
    raise ConfigError(f"generate.engine: unknown engine '{cfg.engine}'")
