"""A real OpenAI-compatible server for tests: `transformers serve` on the bundled SmolLM2.

The bundled model is a GGUF file; the server loads the plain HF folder the product converts it
into once (`curation.models.loadable`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def bundled_model_folder() -> Path:
    """The bundled GGUF SmolLM2 as an HF model folder: the product's converted copy."""
    from curation.models import loadable, resolve_model

    return Path(loadable(resolve_model("bundled")).path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TransformersServer:
    """`transformers serve <folder>` on 127.0.0.1 (CPU); stop() and start() again on the same port."""

    def __init__(
        self, model_folder: Path, log_path: Path, port: int | None = None, threads: int = 1
    ) -> None:
        self.model_folder = model_folder
        self.log_path = log_path
        self.port = port or free_port()
        self.threads = threads
        self.process: subprocess.Popen | None = None
        self._empty_hub = log_path.parent / "empty-hub"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model_id(self) -> str:
        """The model name the server answers to (it is pinned to this folder)."""
        return str(self.model_folder)

    def command(self) -> list[str]:
        return [
            *[sys.executable, "-m", "transformers.cli.transformers", "serve", self.model_id],
            *["--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu"],
            *["--dtype", "float32", "--log-level", "warning"],
        ]

    def start(self, timeout_s: float = 180.0) -> None:
        """Start the server and wait until /health answers (the model is loaded before that)."""
        self._empty_hub.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "CUDA_VISIBLE_DEVICES": "",
            # One torch thread by default: on a small shared machine, OpenMP threads that spin
            # while other processes hold the cores make every request many times slower.
            "OMP_NUM_THREADS": str(self.threads),
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_DISABLE_UPDATE_CHECK": "1",
            # /v1/models lists the Hub cache, not the pinned model: keep that list empty.
            "HF_HUB_CACHE": str(self._empty_hub),
        }
        command = self.command()
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.command()[2]} exited with {self.process.returncode}; "
                    f"log: {self.log_path.read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"the server did not answer /health within {timeout_s:.0f} s")

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash would."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after a grace period."""
        if not self.process or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def requests_seen(self) -> int:
        """Chat completion requests the server has received, over all its starts (from its log)."""
        if not self.log_path.exists():
            return 0
        return self.log_path.read_text(errors="replace").count("[Request received]")
