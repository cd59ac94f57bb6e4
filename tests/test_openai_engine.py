"""The openai engine: retry logic against a fake server, then a real `transformers serve`."""

from __future__ import annotations

import asyncio
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from serve_fixtures import TransformersServer, free_port

from curation.config import ConfigError, GenerateConfig
from curation.generate.engines import build_engine
from curation.generate.engines.base import ChatRequest
from curation.generate.engines.openai import (
    MAX_RETRY_AFTER_S,
    OpenAIEngine,
    parse_retry_after,
    retry_delay,
)
from curation.generate.parse import ReplySchema

FAKE_URL = "http://fake-server.test/v1"
SCHEMA = ReplySchema.model_json_schema(by_alias=False)


def chat(request_id: str = "r0", content: str = "Name one use of water.", **kwargs) -> ChatRequest:
    return ChatRequest(
        request_id=request_id, messages=[{"role": "user", "content": content}], **kwargs
    )


def completion(text: str = "Q1: Why?\nA1: Because.", finish: str = "stop") -> dict:
    return {
        "model": "fake-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


class FakeServer:
    """A fake OpenAI server (httpx.MockTransport): answers each POST with the next scripted reply
    and records what it received."""

    def __init__(self, *replies: httpx.Response, models: list[str] | None = None) -> None:
        self.replies = list(replies)
        self.models = models or []
        self.bodies: list[dict] = []
        self.headers: list[httpx.Headers] = []
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.headers.append(request.headers)
        if request.method == "GET" and request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": m} for m in self.models]})
        self.bodies.append(json.loads(request.content))
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        return httpx.Response(reply.status_code, headers=reply.headers, content=reply.content)

    def engine(self, **kwargs) -> OpenAIEngine:
        options = {"model": "fake-model", "backoff_s": 0.01, "max_backoff_s": 0.05, **kwargs}
        return OpenAIEngine(base_url=FAKE_URL, transport=self.transport, **options)


def ok(**kwargs) -> httpx.Response:
    return httpx.Response(200, json=completion(**kwargs))


def test_429_and_5xx_are_retried_until_the_reply_comes():
    fake = FakeServer(httpx.Response(429), httpx.Response(500), httpx.Response(503), ok())
    [result] = fake.engine(max_retries=4).generate([chat()])
    assert result.finish_reason == "stop"
    assert result.text == "Q1: Why?\nA1: Because."
    assert (result.prompt_tokens, result.completion_tokens) == (11, 7)
    assert len(fake.bodies) == 4


def test_client_errors_are_not_retried_and_name_status_and_url():
    fake = FakeServer(httpx.Response(400, json={"detail": "bad field 'foo'"}))
    [result] = fake.engine(max_retries=4).generate([chat()])
    assert result.finish_reason == "error"
    assert "HTTP 400" in result.error and FAKE_URL in result.error and "bad field" in result.error
    assert len(fake.bodies) == 1


def test_gives_up_after_max_retries_with_the_last_reason():
    fake = FakeServer(httpx.Response(503, text="overloaded"))
    results = fake.engine(max_retries=2).generate([chat("a"), chat("b")])
    assert [r.finish_reason for r in results] == ["error", "error"]
    assert "HTTP 503" in results[0].error and "gave up after 3 tries" in results[0].error
    assert len(fake.bodies) == 6


def test_length_finish_and_unreadable_replies():
    fake = FakeServer(ok(finish="length"), httpx.Response(200, text="<html>proxy</html>"))
    cut, unreadable = fake.engine(concurrency=1).generate([chat("a"), chat("b")])
    assert cut.finish_reason == "length"
    assert unreadable.finish_reason == "error" and "unreadable reply" in unreadable.error


def test_reasoning_apart_from_the_reply_never_becomes_pairs():
    """vLLM's reasoning parsers send a reasoning model's drafts as `reasoning_content` (newer
    servers: `reasoning`); the pairs come from `content` only."""
    from curation.generate.parse import parse_reply

    def reply(content: str | None, **reasoning: str) -> httpx.Response:
        body = completion()
        body["choices"][0]["message"] = {"role": "assistant", "content": content, **reasoning}
        return httpx.Response(200, json=body)

    draft = "Q1: Draft question?\nA1: Draft answer."
    fake = FakeServer(
        reply("Q1: When?\nA1: In 1871.", reasoning_content=draft),
        reply(None, reasoning=draft),
    )
    answered, thought = fake.engine(concurrency=1).generate([chat("a"), chat("b")])
    assert [p.question for p in parse_reply(answered.text).pairs] == ["When?"]
    parsed = parse_reply(thought.text)
    assert not parsed.pairs and "only the model's reasoning" in parsed.errors[0]


def test_retry_after_is_honoured():
    fake = FakeServer(httpx.Response(429, headers={"Retry-After": "1"}), ok())
    started = time.monotonic()
    [result] = fake.engine(max_retries=1).generate([chat()])
    assert result.finish_reason == "stop"
    assert time.monotonic() - started >= 0.95


def test_a_request_past_its_time_limit_is_an_error():
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return ok()

    engine = OpenAIEngine(
        "fake-model",
        base_url=FAKE_URL,
        timeout_s=0.2,
        max_retries=1,
        backoff_s=0.01,
        transport=httpx.MockTransport(slow),
    )
    started = time.monotonic()
    [result] = engine.generate([chat()])
    assert result.finish_reason == "error"
    assert "timed out after 0.2 s" in result.error and "gave up after 2 tries" in result.error
    assert time.monotonic() - started < 3


def test_full_jitter_backoff_stays_under_its_cap():
    rng = random.Random(0)
    delays = [retry_delay(attempt, 1.0, 8.0, rng=rng) for attempt in range(8) for _ in range(50)]
    assert all(0 <= d <= 8.0 for d in delays)
    assert max(retry_delay(0, 1.0, 8.0, rng=rng) for _ in range(50)) <= 1.0
    assert retry_delay(5, 1.0, 8.0, retry_after_s=3.0) == 3.0
    assert retry_delay(0, 1.0, 8.0, retry_after_s=10_000) == MAX_RETRY_AFTER_S
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("Wed, 21 Oct 2099 07:28:00 GMT") > 0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_request_fields_map_to_the_chat_completions_body():
    fake = FakeServer(ok(text=" What is it?\nA1: Water."))
    engine = fake.engine(continue_prefill=True)
    request = chat(
        max_tokens=64,
        temperature=0.3,
        top_p=0.9,
        seed=42,
        repetition_penalty=1.1,
        stop=["\nQ3:"],
        prefill="Q1:",
        json_schema=SCHEMA,
    )
    [result] = engine.generate([request])
    [body] = fake.bodies
    assert body["model"] == "fake-model"
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (64, 0.3, 0.9)
    assert (body["seed"], body["stop"], body["repetition_penalty"]) == (42, ["\nQ3:"], 1.1)
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "reply", "schema": SCHEMA, "strict": True},
    }
    assert body["messages"][-1] == {"role": "assistant", "content": "Q1:"}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert result.text == "Q1: What is it?\nA1: Water."  # the continued prefill is restored
    assert len(request.messages) == 1


def test_defaults_send_no_extensions_and_no_prefill():
    fake = FakeServer(ok(text="Q1: Why?\nA1: Because.\nQ3: extra"))
    [result] = fake.engine().generate([chat(prefill="Q1:", stop=["\nQ3:"])])
    [body] = fake.bodies
    assert not {"repetition_penalty", "continue_final_message", "response_format"} & body.keys()
    assert body["messages"] == [{"role": "user", "content": "Name one use of water."}]
    assert result.text == "Q1: Why?\nA1: Because."  # cut at the stop string the server left in


def test_bundled_model_takes_the_servers_first_model_id():
    fake = FakeServer(ok(), models=["Qwen/Qwen2.5-VL-7B-Instruct", "other"])
    engine = OpenAIEngine("bundled", base_url=FAKE_URL, transport=fake.transport)
    engine.generate([chat()])
    assert engine.model_name == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert fake.bodies[0]["model"] == "Qwen/Qwen2.5-VL-7B-Instruct"


def test_api_key_comes_from_the_named_env_var_and_never_shows(monkeypatch):
    monkeypatch.setenv("CURATION_TEST_KEY", "sk-secret-123")
    fake = FakeServer(httpx.Response(401, text="unauthorized"))
    [result] = fake.engine(api_key_env="CURATION_TEST_KEY").generate([chat()])
    assert fake.headers[-1]["authorization"] == "Bearer sk-secret-123"
    assert "sk-secret" not in result.error
    monkeypatch.delenv("CURATION_TEST_KEY")
    fake.engine(api_key_env="CURATION_TEST_KEY").generate([chat()])
    assert "authorization" not in fake.headers[-1]


def test_base_url_from_the_environment_or_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match=r"generate\.base_url"):
        OpenAIEngine("fake-model")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    engine = build_engine(GenerateConfig(engine="openai", model="m", concurrency=3))
    assert isinstance(engine, OpenAIEngine)
    url = engine.chat_url(chat())
    assert (url, engine.concurrency) == ("http://127.0.0.1:9/v1/chat/completions", 3)


def test_generate_works_from_inside_a_running_event_loop():
    fake = FakeServer(ok())

    async def caller() -> list:
        return fake.engine().generate([chat("a"), chat("b")])

    assert [r.request_id for r in asyncio.run(caller())] == ["a", "b"]


def test_unreachable_server_gives_error_results_after_retries():
    url = f"http://127.0.0.1:{free_port()}/v1"
    engine = OpenAIEngine("m", base_url=url, max_retries=2, backoff_s=0.01)
    results = engine.generate([chat("a"), chat("b")])
    assert [r.request_id for r in results] == ["a", "b"]
    for result in results:
        assert result.finish_reason == "error"
        assert "connection failed" in result.error and url in result.error
        assert "gave up after 3 tries" in result.error


def test_the_tls_context_is_built_once_not_per_batch(monkeypatch, tmp_path):
    """A new httpx client per batch built a new TLS context each time, loading the CA bundle
    again (about 30 ms of CPU a batch, thousands of batches a run); it is now built once."""
    built = []
    real = httpx.create_ssl_context

    def counting(verify=True, *args, **kwargs):
        built.extend([verify] if verify is True else [])  # a new context, not a given one
        return real(verify, *args, **kwargs)

    monkeypatch.setattr(httpx, "create_ssl_context", counting)
    monkeypatch.setattr(httpx._transports.default, "create_ssl_context", counting)
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))  # CA settings no other test used
    url = f"http://127.0.0.1:{free_port()}/v1"
    engine = OpenAIEngine("m", base_url=url, max_retries=0)
    for batch in ("a", "b", "c"):
        assert engine.generate([chat(batch)])[0].finish_reason == "error"
    assert len(built) == 1


def test_a_fleet_spreads_requests_and_fails_over_from_a_dead_replica():
    """Three fake replicas (httpx.MockTransport); the second refuses every connection."""
    hosts = ["http://a.test/v1", "http://b.test/v1/", "http://c.test/v1"]
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "b.test":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json=completion())

    engine = OpenAIEngine(
        "m", base_url=hosts, transport=httpx.MockTransport(handle), backoff_s=0.01, max_retries=1
    )
    requests = [chat(f"unit-{i}") for i in range(30)]
    assert [engine.chat_url(r) for r in requests] == [engine.chat_url(r) for r in requests]
    first_choice = {engine.chat_url(r).split("/")[2] for r in requests}
    assert first_choice == {"a.test", "b.test", "c.test"}  # spread over the whole fleet

    results = engine.generate(requests)
    assert all(r.finish_reason == "stop" for r in results), [r.error for r in results]
    refused = seen.count("b.test")
    assert refused > 0 and len(seen) == 30 + refused  # each refusal cost one retry elsewhere


def test_a_fleet_from_the_environment_is_comma_separated(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://10.0.0.1:8000/v1, http://10.0.0.2:8000/v1")
    engine = build_engine(GenerateConfig(engine="openai", model="m"))
    assert engine.base_urls == ["http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1"]


# --- against a real `transformers serve` (the bundled SmolLM2 on CPU) ---


@pytest.mark.e2e
def test_real_server_returns_text_usage_and_finish_reason(serve_server: TransformersServer):
    engine = OpenAIEngine("bundled", base_url=serve_server.base_url, concurrency=3)
    seen = serve_server.requests_seen()
    requests = [
        chat("water", max_tokens=12),
        chat("sun", "Name one use of the sun.", max_tokens=12, seed=3),
        chat("line", "Write two short lines about rain.", max_tokens=24, stop=["\n"]),
        chat("wind", "Name one use of wind.", max_tokens=12, temperature=0.7, top_p=0.9),
    ]
    results = engine.generate(requests)
    assert [r.request_id for r in results] == ["water", "sun", "line", "wind"]
    for result in results:
        assert result.finish_reason in ("stop", "length"), result.error
        assert result.text.strip()
        assert result.prompt_tokens > 5 and 0 < result.completion_tokens <= 24
    assert results[0].finish_reason == "length" and results[0].completion_tokens == 12
    assert "\n" not in results[2].text
    assert serve_server.requests_seen() - seen == 4  # four requests, none sent twice


@pytest.mark.e2e
def test_an_extension_field_the_server_refuses_is_dropped(serve_server: TransformersServer):
    """transformers serve answers 422 to vLLM's repetition_penalty: sent again without it."""
    engine = OpenAIEngine(serve_server.model_id, base_url=serve_server.base_url, max_retries=0)
    first, second = engine.generate(
        [
            chat("a", "Name a fruit.", max_tokens=8, repetition_penalty=1.1),
            chat("b", "Name a tree.", max_tokens=8, repetition_penalty=1.1),
        ]
    )
    assert first.finish_reason != "error" and second.finish_reason != "error", first.error
    assert engine.unsupported == {"repetition_penalty"}
    later = engine.request_body(chat("c", "Name a bird.", repetition_penalty=1.1))
    assert "repetition_penalty" not in later


@pytest.mark.e2e
def test_real_server_accepts_a_json_schema_request(serve_server: TransformersServer):
    engine = OpenAIEngine(serve_server.model_id, base_url=serve_server.base_url)
    prompt = 'Write one question and answer about water as JSON: {"pairs": [{"question": ...}]}'
    [result] = engine.generate([chat("json", prompt, max_tokens=48, json_schema=SCHEMA)])
    assert result.finish_reason in ("stop", "length"), result.error
    assert result.text.strip() and result.completion_tokens > 0
    # Accepted, not refused and dropped (the engine drops a field the server answers 422 to).
    assert engine.unsupported == set()


@pytest.mark.e2e
def test_server_killed_mid_run_every_request_ends_once(serve_server: TransformersServer):
    engine = OpenAIEngine(
        serve_server.model_id,
        base_url=serve_server.base_url,
        concurrency=2,
        timeout_s=120,
        max_retries=60,  # backoff capped at 2 s: about a minute of retrying, enough for a restart
        backoff_s=0.5,
        max_backoff_s=2.0,
    )
    requests = [chat(f"r{i}", f"Name {i + 2} uses of water.", max_tokens=16) for i in range(6)]
    before = serve_server.requests_seen()
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            run = pool.submit(engine.generate, requests)
            deadline = time.monotonic() + 120
            # A third request arrives only when one has been answered: kill after that.
            while serve_server.requests_seen() - before < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            serve_server.kill()
            first_life = serve_server.requests_seen() - before
            time.sleep(1.0)  # retries meet a closed port
            serve_server.start()
            results = run.result(timeout=300)
    finally:
        if serve_server.process.poll() is not None:
            serve_server.start()  # the next tests share this server
    second_life = serve_server.requests_seen() - before - first_life

    assert [r.request_id for r in results] == [r.request_id for r in requests]
    for result in results:
        if result.finish_reason == "error":
            assert serve_server.base_url in result.error
        else:
            assert result.text.strip() and result.completion_tokens > 0
    assert first_life >= 3
    # Only what was unanswered at the kill is sent again: at most `concurrency` were in flight.
    assert second_life <= len(requests) - first_life + engine.concurrency
    errors = [r.error for r in results if r.error]
    assert second_life >= 1, f"no request reached the restarted server: {errors}"


@pytest.mark.e2e
def test_a_dead_replica_in_the_fleet_costs_retries_not_replies(serve_server: TransformersServer):
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    engine = OpenAIEngine(
        serve_server.model_id, base_url=[dead, serve_server.base_url], backoff_s=0.05
    )
    seen = serve_server.requests_seen()
    requests = [chat(f"fleet-{i}", max_tokens=6) for i in range(4)]
    assert {engine.chat_url(r).startswith(dead) for r in requests} == {True, False}
    results = engine.generate(requests)
    assert all(r.finish_reason in ("stop", "length") for r in results), [r.error for r in results]
    assert serve_server.requests_seen() - seen == 4
