"""The `openai` engine: any OpenAI-compatible server (`vllm serve`, SGLang, `transformers serve`).

Requests go out concurrently (bounded), each with a time limit; connection errors, timeouts,
429 and 5xx are retried with exponential backoff and full jitter (Retry-After honoured). A
request that still fails becomes an error result with its reason: one bad request never stops
the run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from functools import cache
from time import time

import httpx

from curation.config import ConfigError
from curation.generate.engines.base import ChatRequest, Engine, EngineResult, cut_at_stop
from curation.seeding import stable_hash

logger = logging.getLogger(__name__)

# Never wait longer than this between two tries, whatever a server's Retry-After says.
MAX_RETRY_AFTER_S = 300.0
ERROR_BODY_CHARS = 300
# Fields beyond the OpenAI API that some servers (vLLM, SGLang) read and others refuse.
EXTENSION_FIELDS = ("repetition_penalty",)


def retry_delay(
    attempt: int,
    base_s: float,
    cap_s: float,
    retry_after_s: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number `attempt` (0-based): the server's Retry-After when it
    sent one, else "full jitter" — uniform in [0, min(cap, base * 2**attempt)]."""
    if retry_after_s is not None:
        return min(max(retry_after_s, 0.0), MAX_RETRY_AFTER_S)
    return (rng or random).uniform(0.0, min(cap_s, base_s * 2**attempt))


def parse_retry_after(value: str | None) -> float | None:
    """A Retry-After header as seconds: delta-seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp() - time()
    except (TypeError, ValueError):
        return None


@cache
def ssl_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    """httpx's default TLS context, built once per process for the CA settings in the key
    (SSL_CERT_FILE, SSL_CERT_DIR): building one loads the CA bundle, about 30 ms of CPU, which
    a new client per batch paid again for every batch. An SSLContext is safe to share."""
    return httpx.create_ssl_context()


def is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


class OpenAIEngine(Engine):
    """Chat completions over HTTP from an OpenAI-compatible server, `concurrency` at a time."""

    def __init__(
        self,
        model: str = "bundled",
        base_url: str | list[str] | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout_s: float = 300.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        continue_prefill: bool = False,
        transport: httpx.MockTransport | None = None,
    ) -> None:
        """`model` 'bundled' (or empty) means whatever the server serves: the first id of
        GET /models, asked once here, or no model field when it lists none.

        `continue_prefill` sends each request's prefill as a final assistant message for the
        server to continue (`continue_final_message`, a vLLM extension that other servers may
        reject); off, the model writes its reply from the start. `transport` replaces the network
        (tests).

        `base_url` may list several servers serving the same model (a fleet of `vllm serve`
        replicas without a load balancer; OPENAI_BASE_URL may hold them comma-separated): each
        request goes to the one its id picks (a fixed spread over the fleet), and each retry to
        the next, so a dead replica costs a retry, not a failed request."""
        urls = base_url or os.environ.get("OPENAI_BASE_URL") or []
        if isinstance(urls, str):
            urls = urls.split(",")
        self.base_urls = [url.strip().rstrip("/") for url in urls if url.strip()]
        if not self.base_urls:
            raise ConfigError(
                "generate.base_url: the openai engine needs a server URL "
                "(generate.base_url or the OPENAI_BASE_URL environment variable)"
            )
        self.base_url = self.base_urls[0]
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.continue_prefill = continue_prefill
        self.transport = transport
        self.unsupported: set[str] = set()  # extension fields this server refused
        self._rng = random.Random()
        # The name requests carry; None sends none (a server pinned to one model takes that).
        self.server_model: str | None = None if model in ("", "bundled") else model
        if self.server_model is None:
            self.server_model = self._ask_server_model()
        # Part of every response-cache key, so it is settled here, before the first request.
        self.model_name = self.server_model or f"default model of {self.base_url}"

    def chat_url(self, request: ChatRequest, attempt: int = 0) -> str:
        """The server for a request's try: the one its id picks, then the next on each retry."""
        first = stable_hash("server", request.request_id) % len(self.base_urls)
        return f"{self.base_urls[(first + attempt) % len(self.base_urls)]}/chat/completions"

    def generate(self, requests: list[ChatRequest]) -> list[EngineResult]:
        """Runs its own event loop; from a thread that already runs one, on a helper thread."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.agenerate(requests))
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, self.agenerate(requests)).result()

    async def agenerate(self, requests: list[ChatRequest]) -> list[EngineResult]:
        """One result per request, in order; failures are error results, never exceptions."""
        limits = httpx.Limits(
            max_connections=self.concurrency, max_keepalive_connections=self.concurrency
        )
        async with httpx.AsyncClient(
            headers=self._headers(),
            timeout=self.timeout_s,
            limits=limits,
            transport=self.transport,
            verify=ssl_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")),
        ) as client:
            slots = asyncio.Semaphore(self.concurrency)
            return list(await asyncio.gather(*(self._run(client, slots, r) for r in requests)))

    def request_body(self, request: ChatRequest) -> dict:
        """The JSON body of POST /chat/completions for one request."""
        messages = list(request.messages)
        body: dict = {
            "messages": messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
        }
        if self.server_model:
            body["model"] = self.server_model
        if request.stop:
            body["stop"] = list(request.stop)
        if request.repetition_penalty != 1.0 and "repetition_penalty" not in self.unsupported:
            body["repetition_penalty"] = request.repetition_penalty  # vLLM / SGLang extension
        if request.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": request.json_schema, "strict": True},
            }
        if self.continue_prefill and request.prefill:
            messages.append({"role": "assistant", "content": request.prefill})
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        return body

    def _refused_extensions(self, body: dict, response: httpx.Response) -> list[str]:
        """Extension fields (vLLM's repetition_penalty, ...) that a server refused by name with
        400/422: dropped from this body and from every later request, with one warning."""
        if response.status_code not in (400, 422):
            return []
        refused = [f for f in EXTENSION_FIELDS if f in body and f in response.text]
        for name in refused:
            body.pop(name)
            if name not in self.unsupported:
                self.unsupported.add(name)
                logger.warning(
                    "%s does not accept '%s': sending requests without it",
                    response.request.url,
                    name,
                )
        return refused

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _ask_server_model(self) -> str | None:
        """The first model id of GET /models, from the first server of the fleet that answers."""
        with httpx.Client(
            headers=self._headers(), timeout=min(self.timeout_s, 30.0), transport=self.transport
        ) as client:
            for url in self.base_urls:
                try:
                    response = client.get(f"{url}/models")
                    response.raise_for_status()
                    models = response.json().get("data") or []
                    return str(models[0]["id"]) if models else None
                except (httpx.HTTPError, ValueError, AttributeError, KeyError, TypeError) as exc:
                    logger.warning("GET %s/models failed (%s)", url, exc)
        logger.warning("no server listed its models; requests name no model")
        return None

    async def _run(
        self, client: httpx.AsyncClient, slots: asyncio.Semaphore, request: ChatRequest
    ) -> EngineResult:
        body = self.request_body(request)
        reason = ""
        attempt = 0
        while attempt <= self.max_retries:
            retry_after = None
            # The slot is held only while a request is in flight, never while backing off.
            url = self.chat_url(request, attempt)
            async with slots:
                try:
                    # httpx's timeout is per read; wait_for bounds the whole request.
                    response = await asyncio.wait_for(client.post(url, json=body), self.timeout_s)
                except (httpx.TimeoutException, asyncio.TimeoutError):
                    reason = f"timed out after {self.timeout_s:g} s: POST {url}"
                except httpx.TransportError as exc:
                    reason = f"connection failed: POST {url}: {type(exc).__name__} {exc}"
                else:
                    if response.status_code == 200:
                        return self._result(request, response)
                    reason = (
                        f"HTTP {response.status_code} from POST {url}: "
                        f"{response.text[:ERROR_BODY_CHARS]}"
                    )
                    refused = self._refused_extensions(body, response)
                    if refused:
                        continue  # sent again at once without them; not a failed try
                    if not is_retryable_status(response.status_code):
                        return self._error(request, reason)
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
            if attempt < self.max_retries:
                delay = retry_delay(
                    attempt, self.backoff_s, self.max_backoff_s, retry_after, self._rng
                )
                logger.info("%s: %s; retry in %.2f s", request.request_id, reason, delay)
                await asyncio.sleep(delay)
            attempt += 1
        tries = self.max_retries + 1
        return self._error(request, f"{reason} (gave up after {tries} tries)")

    def _result(self, request: ChatRequest, response: httpx.Response) -> EngineResult:
        try:
            data = response.json()
            choice = data["choices"][0]
            content = choice["message"].get("content") or ""
            # vLLM's reasoning parsers return a reasoning model's drafts apart from the reply
            # (`reasoning_content`, newer servers `reasoning`): never read as pairs. A reply
            # that is all reasoning keeps it in a think block, so its reject says why.
            reasoning = choice["message"].get("reasoning_content") or choice["message"].get(
                "reasoning"
            )
            if not content.strip() and isinstance(reasoning, str) and reasoning.strip():
                content = f"<think>{reasoning}</think>"
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return self._error(
                request,
                f"unreadable reply from POST {response.request.url}: "
                f"{response.text[:ERROR_BODY_CHARS]}",
            )
        # Some servers (transformers serve) leave the stop string in the text; OpenAI's API does not.
        text, stopped = cut_at_stop(content, request.stop)
        if self.continue_prefill and request.prefill:
            text = request.prefill + text  # the server continued the prefill: restore it
        usage = data.get("usage") or {}
        finish = "length" if choice.get("finish_reason") == "length" and not stopped else "stop"
        return EngineResult(
            request_id=request.request_id,
            text=text,
            finish_reason=finish,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )

    @staticmethod
    def _error(request: ChatRequest, reason: str) -> EngineResult:
        return EngineResult(
            request_id=request.request_id, text="", finish_reason="error", error=reason
        )
