"""A scripted OpenAI-compatible server for tests — a FAKE standing in for `vllm serve` with a
7B-70B instruction model, which cannot run on these machines.

It speaks the real protocol over real HTTP (`GET /v1/models`, `POST /v1/chat/completions`,
`finish_reason`, `usage`, stop strings cut as vLLM cuts them), and answers each request with the
reply its script picks from the request's messages: replies written the way such models write
(markdown, JSON quirks, citations, derived numbers). Every request is logged for the test.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# A script gives the reply to a chat: its text, or (text, finish_reason) for a reply that ran
# into max_tokens ("length"), or None to close the connection without an answer.
Script = Callable[[list[dict]], str | tuple[str, str] | None]


@dataclass
class ScriptedServer:
    """A running scripted server: its base URL, model id and the requests it answered."""

    base_url: str
    model_id: str
    requests: list[dict] = field(default_factory=list)


def message_text(messages: list[dict]) -> str:
    """All text of a chat's messages (string contents and text parts)."""
    parts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p.get("text", "") for p in content if p.get("type") == "text")
    return "\n".join(parts)


def cut_at_stop(text: str, stop: list[str]) -> str:
    """The reply up to its first stop string (excluded), as vLLM returns it."""
    cuts = [text.find(s) for s in stop if s and s in text]
    return text[: min(cuts)] if cuts else text


class Server(ThreadingHTTPServer):
    """http.server's threading server with a listen queue as deep as a real server's (uvicorn,
    which vLLM runs, keeps 2048): socketserver's default of 5 dropped the connections of a
    client sending 8 requests at once, and each dropped one waited a second for TCP to retry
    it (the throughput benchmark measured those seconds as the pipeline's)."""

    request_queue_size = 1024


@contextmanager
def scripted_server(
    script: Script, model_id: str = "scripted/Qwen2.5-7B-Instruct"
) -> Iterator[ScriptedServer]:
    """Serve `script` on a free loopback port for the duration of the block."""
    state = ScriptedServer(base_url="", model_id=model_id)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep pytest's output clean
            return

        def _send(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": model_id, "object": "model"}]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            with lock:
                state.requests.append(body)
            scripted = script(body["messages"])
            if scripted is None:
                self.close_connection = True
                return
            text, finish = scripted if isinstance(scripted, tuple) else (scripted, "stop")
            reply = cut_at_stop(text, body.get("stop") or [])
            words = len(reply.split())
            self._send(
                200,
                {
                    "id": f"chatcmpl-{len(state.requests)}",
                    "object": "chat.completion",
                    "model": model_id,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply},
                            "finish_reason": finish,
                        }
                    ],
                    "usage": {
                        "prompt_tokens": len(message_text(body["messages"]).split()),
                        "completion_tokens": words,
                        "total_tokens": words,
                    },
                },
            )

    server = Server(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
