"""Generation with the real bundled model: batch-independent sampling, the response cache,
requests with page images, and prompt choice by page range, kind and images."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest
from conftest import ROOT
from PIL import Image

from curation.config import GenerateConfig, UnitsConfig
from curation.generate import REPLY_JSON_SCHEMA, QAGenerator, image_parts
from curation.generate.cache import CachedEngine, ResponseCache, client, request_key
from curation.generate.engines import DeferredEngine
from curation.generate.engines.base import ChatRequest
from curation.generate.engines.local import LocalEngine, text_only
from curation.generate.prompts import PromptLibrary

PROMPTS = ROOT / "prompts"


@pytest.fixture(scope="module")
def engine() -> LocalEngine:
    return LocalEngine("bundled", batch_size=4)


def request(i: int, question: str, **overrides) -> ChatRequest:
    fields = {
        "request_id": f"r{i}",
        "messages": [{"role": "user", "content": question}],
        "max_tokens": 12,
        "temperature": 0.8,
        "top_p": 0.9,
        "seed": 100 + i,
        **overrides,
    }
    return ChatRequest(**fields)


QUESTIONS = [
    "Name a colour.",
    "What is a lighthouse for? Answer in a sentence that is rather long, please.",
    "Say hello.",
]


@pytest.mark.e2e
def test_sampled_replies_do_not_depend_on_the_batch(engine: LocalEngine) -> None:
    alone = [engine.generate([request(i, q)])[0].text for i, q in enumerate(QUESTIONS)]
    batched = [r.text for r in engine.generate([request(i, q) for i, q in enumerate(QUESTIONS)])]
    reordered = engine.generate([request(i, q) for i, q in reversed(list(enumerate(QUESTIONS)))])
    assert alone == batched == [r.text for r in reversed(reordered)]
    assert len(set(alone)) == len(alone)  # three different questions, three different replies
    reseeded = engine.generate([request(1, QUESTIONS[1], seed=999)])[0].text
    assert reseeded != alone[1]  # the seed is what fixes a reply


LONG_QUESTION = (
    "Here is a harbour log. "
    + "The harbour master wrote down the ships, the tides and the weather every hour. " * 12
    + "What did the harbour master write down?"
)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "sampling",
    [
        {"temperature": 0.0},
        {"temperature": 0.0, "repetition_penalty": 1.3, "stop": ["."]},
        {"temperature": 0.8},
    ],
    ids=["greedy", "greedy-penalty-stop", "sampled"],
)
def test_batched_replies_are_those_of_each_request_alone(engine, sampling) -> None:
    """Each prompt of a batch is run alone, without padding, then decoded with the others:
    a reply is the one its request gets alone, whatever the prompt lengths around it."""
    asked = [QUESTIONS[2], QUESTIONS[1], LONG_QUESTION, QUESTIONS[0]]
    requests = [request(i, q, max_tokens=8 + 2 * i, **sampling) for i, q in enumerate(asked)]
    requests[1] = dataclasses.replace(requests[1], prefill="A lighthouse")
    alone = [engine.generate([r])[0] for r in requests]
    batched = engine.generate(requests)
    assert batched == alone
    lengths = sorted(r.prompt_tokens for r in alone)
    assert lengths[-1] > 3 * lengths[0]  # much padding in the batch
    assert all(r.completion_tokens <= q.max_tokens for r, q in zip(alone, requests, strict=True))
    assert alone[1].text.startswith("A lighthouse")
    if sampling == {"temperature": 0.0}:
        # The very tokens transformers' own greedy search gives each prompt on its own.
        for reply, req in zip(alone, requests, strict=True):
            encoded = engine.encode([req])
            tokens = engine.model.generate(
                **encoded,
                max_new_tokens=req.max_tokens,
                do_sample=False,
                pad_token_id=engine.tokenizer.pad_token_id,
            )[0, encoded["input_ids"].shape[1] :].tolist()
            if engine.tokenizer.eos_token_id in tokens:
                tokens = tokens[: tokens.index(engine.tokenizer.eos_token_id)]
            assert reply.completion_tokens == len(tokens)
            assert reply.text == req.prefill + engine.tokenizer.decode(
                tokens, skip_special_tokens=True
            )


@pytest.mark.e2e
def test_cache_returns_stored_replies_and_never_resends(engine, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache")
    cached = CachedEngine(engine, cache)
    requests = [request(i, q) for i, q in enumerate(QUESTIONS[:2])]
    first = cached.generate(requests)
    log = tmp_path / "cache" / "sent.log"
    assert len(log.read_text().split()) == 2  # both sent

    # A rerun (new engine wrapper, same folder): nothing is sent, the same replies come back,
    # under the new request ids.
    again = CachedEngine(engine, ResponseCache(tmp_path / "cache"))
    renamed = [dataclasses.replace(r, request_id=f"new-{r.request_id}") for r in requests]
    second = again.generate(renamed)
    assert len(log.read_text().split()) == 2  # none sent again
    assert [r.text for r in second] == [r.text for r in first]
    assert [r.request_id for r in second] == ["new-r0", "new-r1"]

    # Any parameter that can change the reply misses the cache.
    changed = dataclasses.replace(requests[0], temperature=0.5)
    assert request_key(engine.model_name, changed) != request_key(engine.model_name, requests[0])
    again.generate([changed])
    sent = log.read_text().split()
    assert len(sent) == len(set(sent)) == 3


def test_a_local_model_whose_replies_are_all_cached_is_never_loaded(tmp_path: Path) -> None:
    """A rerun or resumed run answered by the response cache loads no model; the name that keys
    the cache is the loaded engine's (asserted at the load: test_bfloat16_... and every run)."""
    cfg = GenerateConfig(cache_dir=str(tmp_path))
    engine = client(cfg)
    assert engine.model_name.endswith(".gguf")  # the bundled model's file, as LocalEngine says
    assert client(cfg.model_copy(update={"dtype": "bfloat16"})).model_name == (
        f"{engine.model_name}:bfloat16"
    )
    asked = request(0, QUESTIONS[0])
    stored = {"request_id": "earlier", "text": "Blue.", "finish_reason": "stop"}
    ResponseCache(tmp_path).put(request_key(engine.model_name, asked), stored)
    [reply] = engine.generate([asked])
    assert (reply.request_id, reply.text) == ("r0", "Blue.")
    assert engine.engine.engine is None  # no model in memory
    assert not (tmp_path / "sent.log").exists()


@pytest.mark.e2e
def test_a_torn_cache_file_is_asked_again(engine, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    req = request(0, QUESTIONS[0])
    key = request_key(engine.model_name, req)
    path = tmp_path / key[:2] / f"{key}.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"request_id": "r0", "te')  # a crash mid-write (no rename happened)
    result = CachedEngine(engine, cache).generate([req])[0]
    assert result.finish_reason in ("stop", "length") and result.text
    assert cache.get(key)["text"] == result.text


def png(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


def unit(pages: list[int], kind: str = "document") -> dict:
    return {
        "unit_id": f"doc:{pages[0]}-{pages[-1]}",
        "doc_id": "doc",
        "kind": kind,
        "pages": pages,
        "texts": [f"Page {p + 1} says the budget was {100 + p} dollars." for p in pages],
        "images": [png("red") for _ in pages],
        "error_code": None,
    }


def test_requests_carry_page_images_for_vlm_engines() -> None:
    cfg = GenerateConfig(prompt_set="leopard", images=True, cache=False, pairs_per_unit=2)
    generator = QAGenerator(cfg, UnitsConfig(), PROMPTS)  # requests need no model
    req = generator.request_for(unit([0, 1]))
    parts = req.messages[-1]["content"]
    images = [p for p in parts if p["type"] == "image_url"]
    assert len(images) == 2
    assert all(p["image_url"]["url"].startswith("data:image/png;base64,") for p in images)
    assert [p["text"] for p in parts if p["type"] == "text"][:2] == ["Page 1:", "Page 2:"]
    assert "--- Page 2 ---" in parts[-1]["text"]
    # A text-only model reads the same request without the images.
    flat = text_only(req.messages)
    assert isinstance(flat[-1]["content"], str) and "Page 2" in flat[-1]["content"]
    assert image_parts([4], [b"\xff\xd8jpeg"])[1]["image_url"]["url"].startswith("data:image/jpeg")
    slides = GenerateConfig(prompt_set="slides", images=True, cache=False)
    deck = QAGenerator(slides, UnitsConfig(), PROMPTS)
    parts = deck.request_for(unit([2, 3], kind="slides")).messages[-1]["content"]
    assert [p["text"] for p in parts if p["type"] == "text"][:2] == ["Slide 3:", "Slide 4:"]


def test_prompt_choice_follows_page_range_kind_and_images() -> None:
    leopard = PromptLibrary(PROMPTS / "leopard")
    chosen = {leopard.choose(0, f"d:{i}", n_pages=3).id for i in range(60)}
    assert chosen == {"leopard/cross_page", "leopard/compare", "leopard/table"}
    with_images = {leopard.choose(0, f"d:{i}", n_pages=3, images=True).id for i in range(60)}
    assert "leopard/chart" in with_images
    slides = PromptLibrary(PROMPTS / "slides")
    single = {slides.choose(0, f"s:{i}", n_pages=1, kind="slides").id for i in range(40)}
    assert single == {"slides/single_hop"}  # the others need two slides
    weighted = PromptLibrary(PROMPTS / "slides", {"slides/multi_hop": 0, "slides/arithmetic": 0})
    assert {weighted.choose(0, f"s:{i}", n_pages=2, kind="slides").id for i in range(40)} == {
        "slides/single_hop"
    }


def test_json_prompts_send_the_reply_schema() -> None:
    cfg = GenerateConfig(prompt_set="slides", images=True, cache=False)
    generator = QAGenerator(cfg, UnitsConfig(), PROMPTS)
    requests = [generator.request_for(unit([i], kind="slides")) for i in range(30)]
    json_requests = [r for r in requests if r.json_schema is not None]
    assert json_requests and all(r.json_schema == REPLY_JSON_SCHEMA for r in json_requests)
    assert all(not r.stop for r in json_requests)
    assert set(REPLY_JSON_SCHEMA["$defs"]["QAItem"]["properties"]) >= {"question", "answer"}
    line_requests = [r for r in requests if r.json_schema is None]
    assert line_requests and all(r.stop == ["\nQ5:"] for r in line_requests)
    # Each unit gets its own seed, the same on every run.
    assert len({r.seed for r in requests}) == len(requests)
    again = QAGenerator(cfg, UnitsConfig(), PROMPTS)
    assert [again.request_for(unit([i], kind="slides")).seed for i in range(30)] == [
        r.seed for r in requests
    ]


@pytest.mark.e2e
def test_the_bundled_model_loads_from_a_converted_copy_with_the_gguf_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GGUF file is converted once into an HF folder under the model cache; the copy has the
    very weights and tokenizer of the GGUF file (a plain HF folder, which vLLM loads too), and
    a leftover half-written copy is ignored."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from curation.models import loadable, resolve_model

    monkeypatch.setenv("CURATION_MODEL_CACHE", str(tmp_path / "models"))
    # The model and tokenizer the conversion reads from the GGUF file are kept to compare the
    # copy with (a second read of the GGUF file would cost as much as the conversion).
    read_from_gguf = []

    def keeping(loader):
        from_pretrained = loader.from_pretrained

        def keep(*args, **kwargs):
            loaded = from_pretrained(*args, **kwargs)
            if kwargs.get("gguf_file"):
                read_from_gguf.append(loaded)
            return loaded

        monkeypatch.setattr(loader, "from_pretrained", keep)

    keeping(AutoModelForCausalLM)
    keeping(AutoTokenizer)
    gguf = resolve_model("bundled")
    converted = loadable(gguf)
    folder = Path(converted.path)
    assert converted.gguf_file is None and folder.parent == tmp_path / "models"
    assert (folder / "config.json").is_file() and list(folder.glob("*.safetensors"))
    # Dequantized weights, and no GGUF marker that vLLM refuses ("Unknown quantization method").
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert not list(folder.parent.glob("*.partial-*"))  # nothing half-written left behind
    assert loadable(gguf) == converted  # converted once, then found

    gguf_tokenizer, direct = read_from_gguf
    copy = AutoModelForCausalLM.from_pretrained(converted.path)
    weights, copied = direct.state_dict(), copy.state_dict()
    assert weights.keys() == copied.keys()
    assert all(torch.equal(weights[name], copied[name]) for name in weights)
    tokenizers = [gguf_tokenizer, AutoTokenizer.from_pretrained(converted.path)]
    chat = [{"role": "user", "content": "Ünïcödé: what rose 1.5% in Q3?"}]
    prompts = [
        t.apply_chat_template(chat, tokenize=True, add_generation_prompt=True) for t in tokenizers
    ]
    assert prompts[0] == prompts[1]
    assert tokenizers[0].eos_token_id == tokenizers[1].eos_token_id

    # An engine reports the GGUF file's name (the response cache's key), not the copy's folder.
    assert LocalEngine("bundled").model_name == gguf.gguf_file


@pytest.mark.e2e
def test_bfloat16_weights_write_replies_cached_apart_from_float32(engine: LocalEngine) -> None:
    import torch

    half = LocalEngine("bundled", batch_size=2, dtype="bfloat16")
    assert next(half.model.parameters()).dtype == torch.bfloat16
    assert next(engine.model.parameters()).dtype == torch.float32  # auto on the CPU
    assert half.model_name == f"{engine.model_name}:bfloat16"
    asked = request(0, QUESTIONS[1], max_tokens=12)
    [reply] = half.generate([asked])
    assert reply.text.strip() and reply.completion_tokens > 0
    # Its replies are kept under other cache keys than float32's, never served for them.
    assert request_key(half.model_name, asked) != request_key(engine.model_name, asked)
    assert LocalEngine("bundled", dtype="float32").model_name == engine.model_name
    deferred = DeferredEngine(GenerateConfig(dtype="bfloat16", batch_size=2))
    assert deferred.model_name == half.model_name and deferred.engine is None
    assert deferred.generate([asked]) == [reply]  # loaded at its first request
    assert next(deferred.engine.model.parameters()).dtype == torch.bfloat16


def test_a_deferred_engine_names_its_model_without_importing_torch() -> None:
    """A run whose replies are all cached never loads the model; naming it (the cache key) must
    not import torch either: seconds in every generation actor of a rerun or a resume."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from curation.config import GenerateConfig\n"
        "from curation.generate.engines import DeferredEngine\n"
        "name = DeferredEngine(GenerateConfig()).model_name\n"
        "print(name, 'torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    name, torch_imported = result.stdout.split()
    assert name.startswith("SmolLM2") and torch_imported == "False"
