"""Generation engines: local batched vs one at a time, and the openai engine vs a bare client.

(a) The local engine (bundled SmolLM2-135M, in-process) on the same short prompts, batched vs
    one request at a time: new tokens/s. Goal: batched >= 4x.
(b) The openai engine against a real `transformers serve` (the bundled model converted to an HF
    folder, as the tests do), vs a bare concurrent httpx client that sends the very same request
    bodies at the same concurrency: new tokens/s. Goal: engine >= 0.95x the bare client. The two
    alternate for `--rounds` rounds so that load from other processes hits both alike.
(c) The limit on this machine: the `local` engine against a bare loop over the same model (one
    forward pass over the left-padded prompts, then one token per step on a growing KV cache,
    greedy, no pipeline), on the docmatix recipe's real requests (2-page units of the sample
    PDFs), the prompt pass and the decode steps timed apart, in float32 (the default) and in
    bfloat16. Goal: engine >= 0.8x the bare loop.

Run: make bench-generate   (or .venv/bin/python benchmarks/bench_generate.py --help)
Prints a Markdown table; record it in docs/benchmarks.md with the machine it ran on.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the serve fixture: GGUF -> HF folder, server process

from serve_fixtures import TransformersServer, bundled_model_folder  # noqa: E402

from curation.config import GenerateConfig, IngestConfig, UnitsConfig  # noqa: E402
from curation.generate import QAGenerator  # noqa: E402
from curation.generate.engines.base import ChatRequest  # noqa: E402
from curation.generate.engines.local import LocalEngine  # noqa: E402
from curation.generate.engines.openai import OpenAIEngine  # noqa: E402
from curation.ingest import ingest_document  # noqa: E402

TOPICS = [
    "drinking water treatment", "solar panels", "library opening hours", "bus timetables",
    "annual budgets", "bridge inspections", "school lunches", "recycling rules",
    "flood warnings", "museum tickets", "tax deadlines", "park maintenance",
    "hospital wards", "train delays", "street lighting", "wind farms",
]  # fmt: skip


def prompts(n: int, max_tokens: int) -> list[ChatRequest]:
    """n short, distinct chat requests (greedy, so every run generates the same tokens)."""
    return [
        ChatRequest(
            request_id=f"bench-{i}",
            messages=[
                {"role": "user", "content": f"Write one question and its answer about {topic}."}
            ],
            max_tokens=max_tokens,
            temperature=0.0,
        )
        for i, topic in enumerate((TOPICS * (n // len(TOPICS) + 1))[:n])
    ]


def tokens_per_s(run, requests: list[ChatRequest]) -> tuple[float, int]:
    start = time.perf_counter()
    tokens = run(requests)
    return tokens / (time.perf_counter() - start), tokens


def bench_local(
    n: int, max_tokens: int, batch_size: int, threads: int | None
) -> list[tuple[str, str]]:
    engine = LocalEngine("bundled", batch_size=batch_size, threads=threads)
    requests = prompts(n, max_tokens)
    engine.generate(requests[:1])  # warm-up: first-call allocations

    def run(batch: int):
        def go(rs: list[ChatRequest]) -> int:
            engine.batch_size = batch
            results = engine.generate(rs)
            assert all(r.finish_reason != "error" for r in results)
            return sum(r.completion_tokens for r in results)

        return go

    single, single_tokens = tokens_per_s(run(1), requests)
    batched, batched_tokens = tokens_per_s(run(batch_size), requests)
    return [
        (f"local, one request at a time ({single_tokens} new tokens)", f"{single:.1f} tokens/s"),
        (f"local, batch {batch_size} ({batched_tokens} new tokens)", f"{batched:.1f} tokens/s"),
        ("local, batched / one at a time (goal >= 4x)", f"**{batched / single:.2f}x**"),
    ]


def recipe_requests(n: int, max_tokens: int) -> list[ChatRequest]:
    """The first n requests the docmatix recipe sends: 2-page units of the sample PDFs."""
    units_cfg = UnitsConfig(pages_per_unit=2, max_chars=4000)
    units = [
        unit
        for path in sorted((ROOT / "data" / "samples").glob("*.pdf"))
        for unit in ingest_document(path, IngestConfig(dpi=36), units_cfg, str(path))
        if unit["texts"]
    ][:n]
    cfg = GenerateConfig(max_tokens=max_tokens, temperature=0.0)
    generator = QAGenerator(cfg, units_cfg, ROOT / "prompts")
    return [generator.request_for(unit) for unit in units]


def bare_loop(model, encoded, steps: int) -> tuple[float, float]:
    """Seconds of the prompt pass and of `steps` greedy decode steps, plain transformers."""
    import torch

    mask = encoded["attention_mask"]
    with torch.inference_mode():
        start = time.perf_counter()
        out = model(**encoded, use_cache=True)
        prompt_s = time.perf_counter() - start
        cache, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        start = time.perf_counter()
        for _ in range(steps):
            mask = torch.cat([mask, torch.ones_like(token)], dim=1)
            out = model(input_ids=token, attention_mask=mask, past_key_values=cache)
            cache, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        return prompt_s, time.perf_counter() - start


def engine_loop(engine: LocalEngine, requests: list[ChatRequest]) -> tuple[float, float, int]:
    """The engine's prompt pass (to its first token) and decode seconds, and its decode steps,
    from a logits processor that notes the time of every step."""
    stamps: list[float] = []

    def note(input_ids, scores):
        stamps.append(time.perf_counter())
        return scores

    generate = engine.model.generate
    engine.model.generate = lambda **kw: generate(
        **kw | {"logits_processor": [note, *kw["logits_processor"]]}
    )
    try:
        start = time.perf_counter()
        engine.generate(requests)
        end = time.perf_counter()
    finally:
        engine.model.generate = generate
    return stamps[0] - start, end - stamps[0], len(stamps) - 1


def bench_limit(n: int, steps: int, threads: int | None) -> list[tuple[str, str]]:
    rows = []
    requests = recipe_requests(n, steps + 1)
    for dtype in ("float32", "bfloat16"):
        engine = LocalEngine("bundled", batch_size=n, threads=threads, dtype=dtype)
        encoded = engine.encode(requests)
        real = int(encoded["attention_mask"].sum())
        padded = encoded["input_ids"].numel()
        bare_loop(engine.model, engine.encode(requests[:1]), 2)  # warm-up
        bare_prompt, bare_decode = bare_loop(engine.model, encoded, steps)
        ours_prompt, ours_decode, ours_steps = engine_loop(engine, requests)
        bare_step, ours_step = bare_decode / steps, ours_decode / max(ours_steps, 1)
        rows += [
            (
                f"{dtype}: prompt pass, batch {n} ({real} prompt tokens, {padded} with padding)",
                f"bare {real / bare_prompt:.0f} tokens/s, engine {real / ours_prompt:.0f} "
                f"tokens/s = **{bare_prompt / ours_prompt:.2f}x**",
            ),
            (
                f"{dtype}: decode step, batch {n} (bare {steps} steps, engine {ours_steps})",
                f"bare {bare_step * 1000:.0f} ms ({n / bare_step:.1f} tokens/s), engine "
                f"{ours_step * 1000:.0f} ms ({n / ours_step:.1f} tokens/s) = "
                f"**{bare_step / ours_step:.2f}x**",
            ),
        ]
    return rows


async def bare_client(base_url: str, bodies: list[dict], concurrency: int) -> int:
    """The baseline: the same bodies POSTed by a plain httpx client, `concurrency` at a time."""
    slots = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:

        async def post(body: dict) -> int:
            async with slots:
                response = await client.post(f"{base_url}/chat/completions", json=body)
            response.raise_for_status()
            return response.json()["usage"]["completion_tokens"]

        return sum(await asyncio.gather(*(post(b) for b in bodies)))


def bench_openai(
    n: int, max_tokens: int, concurrency: int, rounds: int, server_threads: int
) -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        server = TransformersServer(
            bundled_model_folder(), Path(tmp) / "server.log", threads=server_threads
        )
        server.start()
        try:
            engine = OpenAIEngine("bundled", base_url=server.base_url, concurrency=concurrency)
            requests = prompts(n, max_tokens)

            def ours(rs: list[ChatRequest]) -> int:
                results = engine.generate(rs)
                assert all(r.finish_reason != "error" for r in results), results
                return sum(r.completion_tokens for r in results)

            def bare(rs: list[ChatRequest]) -> int:
                bodies = [engine.request_body(r) for r in rs]  # exactly what the engine sends
                return asyncio.run(bare_client(server.base_url, bodies, concurrency))

            ours(requests[:1])  # warm-up
            rates: dict[str, list[float]] = {"engine": [], "bare": []}
            for round_ in range(rounds):
                order = [("engine", ours), ("bare", bare)]
                for name, run in order if round_ % 2 == 0 else order[::-1]:
                    rates[name].append(tokens_per_s(run, requests)[0])
        finally:
            server.stop()
    engine_rate, bare_rate = (statistics.median(rates[k]) for k in ("engine", "bare"))
    spread = ", ".join(
        f"{e:.1f}/{b:.1f}" for e, b in zip(rates["engine"], rates["bare"], strict=True)
    )
    return [
        (
            f"transformers serve, bare httpx client, concurrency {concurrency} (median)",
            f"{bare_rate:.1f} tokens/s",
        ),
        (
            f"transformers serve, openai engine, concurrency {concurrency} (median)",
            f"{engine_rate:.1f} tokens/s",
        ),
        ("openai engine / bare client (goal >= 0.95x)", f"**{engine_rate / bare_rate:.2f}x**"),
        ("rounds, engine/bare tokens/s", spread),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16, help="Requests per measurement.")
    parser.add_argument("--max-tokens", type=int, default=48, help="New tokens per request (a).")
    parser.add_argument("--batch-size", type=int, default=16, help="Local engine batch (a).")
    parser.add_argument("--local-threads", type=int, help="Torch threads (a; default: all).")
    parser.add_argument("--serve-max-tokens", type=int, default=32, help="New tokens (b).")
    parser.add_argument("--concurrency", type=int, default=4, help="Requests in flight (b).")
    parser.add_argument("--rounds", type=int, default=2, help="Alternating rounds (b).")
    parser.add_argument("--server-threads", type=int, default=1, help="Torch threads (b).")
    parser.add_argument("--limit-steps", type=int, default=64, help="Decode steps (c).")
    parser.add_argument("--limit-batch", type=int, default=8, help="Recipe requests (c).")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--skip-limit", action="store_true")
    parser.add_argument("--skip-serve", action="store_true")
    args = parser.parse_args()
    rows = []
    if not args.skip_local:
        rows += bench_local(args.prompts, args.max_tokens, args.batch_size, args.local_threads)
    if not args.skip_limit:
        rows += bench_limit(args.limit_batch, args.limit_steps, args.local_threads)
    if not args.skip_serve:
        rows += bench_openai(
            args.prompts, args.serve_max_tokens, args.concurrency, args.rounds, args.server_threads
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        f"; load average at the end (1, 5, 15 min): {load}"
    )
    print("| measure | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
