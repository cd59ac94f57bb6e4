"""The response cache: a finished request is never sent again, by a rerun or a resumed run.

Keys hash everything that decides a reply (model, messages, sampling parameters, seed, stops,
schema), so a changed prompt or setting misses the cache instead of reusing a stale reply. One
small JSON file per reply, written atomically, works from many processes and on a shared path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from curation.config import GenerateConfig
from curation.files import write_atomic
from curation.generate.engines.base import ChatRequest, Engine, EngineResult

CACHE_VERSION = 1


def request_key(model: str, request: ChatRequest) -> str:
    """The cache key of one request: every field that can change the reply, not its id."""
    fields = dataclasses.asdict(request)
    fields.pop("request_id")
    blob = json.dumps(
        {"v": CACHE_VERSION, "model": model, **fields}, sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    """Replies stored as `<dir>/<key[:2]>/<key>.json`."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            return json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # missing, or torn by a crash before the rename: ask the engine again

    def log_sent(self, keys: list[str]) -> None:
        """Append the keys of requests about to be sent to `sent.log` (an audit trail: a key
        appears twice only if a request was sent twice)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "sent.log", "a", encoding="utf-8") as fh:
            fh.write("".join(f"{key}\n" for key in keys))

    def put(self, key: str, value: dict) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(value, ensure_ascii=False).encode("utf-8"))


class CachedEngine(Engine):
    """Wraps an engine: cached replies are returned as they are, the rest are sent and stored.

    Failed requests (finish_reason "error") are not stored, so a rerun tries them again.
    """

    def __init__(self, engine: Engine, cache: ResponseCache) -> None:
        self.engine = engine
        self.cache = cache
        self.model_name = engine.model_name

    def generate(self, requests: list[ChatRequest]) -> list[EngineResult]:
        keys = [request_key(self.model_name, r) for r in requests]
        results: list[EngineResult | None] = []
        for request, key in zip(requests, keys, strict=True):
            stored = self.cache.get(key)
            results.append(
                EngineResult(**{**stored, "request_id": request.request_id}) if stored else None
            )
        todo = [i for i, result in enumerate(results) if result is None]
        if todo:
            self.cache.log_sent([keys[i] for i in todo])
            fresh = self.engine.generate([requests[i] for i in todo])
            for i, result in zip(todo, fresh, strict=True):
                if result.finish_reason != "error":
                    self.cache.put(keys[i], dataclasses.asdict(result))
                results[i] = result
        return [r for r in results if r is not None]


def client(cfg: GenerateConfig, engine: Engine | None = None) -> Engine:
    """The engine a `generate` section names (or `engine`, already loaded), behind the response
    cache when the section keeps `cache` on: what generation and the judge both send through."""
    if engine is None:
        from curation.generate.engines import DeferredEngine, build_engine

        # Behind the cache, a local model loads only for a request the cache cannot answer.
        engine = DeferredEngine(cfg) if cfg.cache and cfg.engine == "local" else build_engine(cfg)
    if cfg.cache and not isinstance(engine, CachedEngine):
        engine = CachedEngine(engine, ResponseCache(cfg.cache_dir))
    return engine


def send_batched(
    cfg: GenerateConfig, engine: Engine | None, requests: list[ChatRequest]
) -> tuple[Engine | None, list[EngineResult]]:
    """The results of `requests`, sent in batches of `cfg.batch_size` through `client(cfg,
    engine)`, and that engine to reuse. With nothing to send no engine is built (for `local`,
    no model is loaded): what an LLM filter (the judge, the verifier) asks its model through."""
    if not requests:
        return engine, []
    engine = client(cfg, engine)
    results: list[EngineResult] = []
    for start in range(0, len(requests), cfg.batch_size):
        results.extend(engine.generate(requests[start : start + cfg.batch_size]))
    return engine, results
