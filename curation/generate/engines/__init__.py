"""Generation engines behind one interface."""

from __future__ import annotations

from curation.config import ConfigError, GenerateConfig
from curation.generate.engines.base import ChatRequest, Engine, EngineResult

__all__ = ["ChatRequest", "Engine", "EngineResult", "build_engine"]


def build_engine(cfg: GenerateConfig) -> Engine:
    """The engine a recipe's `generate` section names, with its model loaded."""
    if cfg.engine == "local":
        from curation.generate.engines.local import LocalEngine

        return LocalEngine(cfg.model, batch_size=cfg.batch_size, threads=cfg.threads)
    raise ConfigError(f"generate.engine: unknown engine '{cfg.engine}'")
