"""vLLM's CPU build beside the `local` engine, on the same requests (issue 31).

The docmatix recipe's first N requests (2-page units of the sample PDFs, greedy, prefill
continued), the bundled SmolLM2-135M (its converted HF folder) in float32 on all three:
(a) the `local` engine (transformers, in-process, batch B);
(b) vLLM offline (`vllm.LLM`, the engine Ray Data LLM's stage runs, here without Ray) with the
    `vllm` engine's CPU settings (eager, no chunked prefill, a 1 GiB KV cache), at most B
    sequences at a time;
(c) vLLM's OpenAI server (the tests' VLLMServer) through the `openai` engine, concurrency B.
New tokens/s of the generation alone (model loading and server start timed apart), and each
vLLM figure over the local engine's. One run, the three one after the other (offline last: its
engine process lives as long as this one).

Run: make bench-vllm   (from .venv-vllm: make setup-vllm first)
Prints a Markdown table; record it in docs/benchmarks.md with the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "vllm_cpu"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_generate import recipe_requests  # noqa: E402
from serve_fixtures import bundled_model_folder  # noqa: E402
from vllm_fixtures import VLLMServer  # noqa: E402

from curation.generate.engines.base import ChatRequest  # noqa: E402
from curation.generate.engines.local import LocalEngine  # noqa: E402
from curation.generate.engines.openai import OpenAIEngine  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def bench_local(requests: list[ChatRequest], batch: int) -> dict:
    engine, load_s = timed(lambda: LocalEngine("bundled", batch_size=batch, dtype="float32"))
    results, wall = timed(lambda: engine.generate(requests))
    assert all(r.finish_reason != "error" for r in results), results
    return {"start_s": load_s, "wall_s": wall, "tokens": sum(r.completion_tokens for r in results)}


def bench_offline(requests: list[ChatRequest], batch: int, folder: Path) -> dict:
    from vllm import LLM, SamplingParams

    llm, load_s = timed(
        lambda: LLM(
            model=str(folder),
            dtype="float32",
            enforce_eager=True,
            enable_chunked_prefill=False,
            kv_cache_memory_bytes=1024**3,
            max_num_seqs=batch,
            max_model_len=4096,
        )
    )
    conversations = [
        [*r.messages, {"role": "assistant", "content": r.prefill}] if r.prefill else r.messages
        for r in requests
    ]
    params = [
        SamplingParams(temperature=0.0, max_tokens=r.max_tokens, stop=list(r.stop) or None)
        for r in requests
    ]
    prefilled = any(r.prefill for r in requests)
    outputs, wall = timed(
        lambda: llm.chat(
            conversations,
            params,
            add_generation_prompt=not prefilled,
            continue_final_message=prefilled,
            use_tqdm=False,
        )
    )
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    return {"start_s": load_s, "wall_s": wall, "tokens": tokens}


def bench_served(requests: list[ChatRequest], batch: int, folder: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        server = VLLMServer(folder, Path(tmp) / "server.log", threads=os.cpu_count() or 1)
        _, start_s = timed(lambda: server.start(timeout_s=600))
        try:
            engine = OpenAIEngine(
                server.model_id, base_url=server.base_url, concurrency=batch, continue_prefill=True
            )
            results, wall = timed(lambda: engine.generate(requests))
        finally:
            server.stop()
    assert all(r.finish_reason != "error" for r in results), results
    return {"start_s": start_s, "wall_s": wall, "tokens": sum(r.completion_tokens for r in results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    requests = recipe_requests(args.requests, args.max_tokens)
    folder = bundled_model_folder()
    runs = {
        "local engine (transformers)": bench_local(requests, args.batch),
        "vLLM served (openai engine)": bench_served(requests, args.batch, folder),
        # Last: its engine process lives as long as this one.
        "vLLM offline (vllm.LLM)": bench_offline(requests, args.batch, folder),
    }
    base = runs["local engine (transformers)"]
    base_rate = base["tokens"] / base["wall_s"]
    print(
        f"\n{len(requests)} docmatix requests, up to {args.max_tokens} new tokens, batch/"
        f"concurrency {args.batch}, float32; {platform.machine()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}\n"
    )
    print("| engine | start (s) | generation (s) | new tokens | tokens/s | vs local |")
    print("|---|---|---|---|---|---|")
    for name, run in runs.items():
        rate = run["tokens"] / run["wall_s"]
        print(
            f"| {name} | {run['start_s']:.1f} | {run['wall_s']:.1f} | {run['tokens']} | "
            f"{rate:.1f} | {rate / base_rate:.2f}x |"
        )


if __name__ == "__main__":
    main()
