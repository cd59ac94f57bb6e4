"""The `local` engine: a transformers model in-process (CPU or GPU), batched with left padding."""

from __future__ import annotations

import base64
import binascii
import inspect
import io
import logging
import os
from typing import Any

from curation.config import ConfigError
from curation.generate.engines.base import ChatRequest, Engine, EngineResult, cut_at_stop
from curation.models import ModelLocation, loadable, resolve_model
from curation.seeding import stable_hash

logger = logging.getLogger(__name__)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def usual_dtype(device: str) -> str:
    return "bfloat16" if device.startswith("cuda") else "float32"


def local_model_name(model: str, dtype: str = "auto", device: str | None = None) -> str:
    """The name a LocalEngine of `model` reports, without loading it. It keys the response
    cache: a dtype other than the usual one for the device is named in it, since it writes
    other replies."""
    return _model_name(resolve_model(model), dtype, device)


def _model_name(location: ModelLocation, dtype: str, device: str | None) -> str:
    """`device` is looked up only for a dtype other than "auto": finding it imports torch
    (seconds), which a run whose replies are all cached otherwise never needs."""
    if dtype == "auto" or dtype == usual_dtype(device or default_device()):
        return location.name
    return f"{location.name}:{dtype}"


class LocalEngine(Engine):
    """Runs a causal LM, or an image-text-to-text model (a VLM: Idefics3 / SmolVLM, Qwen2-VL...)
    with its processor, with transformers; requests are batched in groups of `batch_size`.

    A VLM gets each request's images (OpenAI `image_url` parts with data URLs, in order, each
    after its "Page N:" label) through its processor, which sizes them to the model's own
    image budget (Idefics3 tiles, Qwen2-VL's max_pixels). A text-only model reads the text
    parts only, and says once that it dropped images."""

    def __init__(
        self,
        model: str = "bundled",
        batch_size: int = 8,
        threads: int | None = None,
        device: str | None = None,
        dtype: str = "auto",
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(threads or os.cpu_count() or 1)
        location = resolve_model(model)
        self.batch_size = batch_size
        self.device = device or default_device()
        usual = usual_dtype(self.device)
        self.model_name = _model_name(location, dtype, self.device)
        location = loadable(location)  # a GGUF file loads from its converted copy
        dtype = getattr(torch, usual if dtype == "auto" else dtype)
        kwargs = {"gguf_file": location.gguf_file} if location.gguf_file else {}
        self.processor = None if location.gguf_file else vision_processor(location.path)
        self.images_dropped = 0
        if self.processor is not None:
            from transformers import AutoModelForImageTextToText

            self.tokenizer = self.processor.tokenizer
            self.model = AutoModelForImageTextToText.from_pretrained(location.path, dtype=dtype)
        else:
            self.tokenizer = AutoTokenizer.from_pretrained(location.path, **kwargs)
            self.model = AutoModelForCausalLM.from_pretrained(location.path, dtype=dtype, **kwargs)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.to(self.device).eval()

    @property
    def reads_images(self) -> bool:
        return self.processor is not None

    def generate(self, requests: list[ChatRequest]) -> list[EngineResult]:
        results: list[EngineResult] = []
        for start in range(0, len(requests), self.batch_size):
            results.extend(self._generate_batch(requests[start : start + self.batch_size]))
        return results

    def _prompt(self, request: ChatRequest) -> str:
        urls = image_urls(request.messages)
        if urls:
            self._dropped(len(urls))
        text = self.tokenizer.apply_chat_template(
            text_only(request.messages), tokenize=False, add_generation_prompt=True
        )
        return text + request.prefill

    def _dropped(self, count: int) -> None:
        if not self.images_dropped:
            logger.warning(
                "%s reads no images: the page images of its requests are dropped (use a VLM, "
                "or generate.images: false)",
                self.model_name,
            )
        self.images_dropped += count

    def encode(self, batch: list[ChatRequest]) -> Any:
        """The model's inputs for a batch, left-padded: token ids, and for a VLM the pixel
        values of every request's images."""
        if self.processor is None:
            return self.tokenizer(
                [self._prompt(r) for r in batch],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(self.device)
        prompts, images = [], []
        for request in batch:
            messages, pictures = vision_messages(request.messages)
            text = self.processor.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            prompts.append(text + request.prefill)
            images.append(pictures)
        extra = {"images": images} if any(images) else {}
        return self.processor(
            text=prompts, return_tensors="pt", padding=True, add_special_tokens=False, **extra
        ).to(self.device)

    def _generate_batch(self, batch: list[ChatRequest]) -> list[EngineResult]:
        import torch
        from transformers import LogitsProcessorList

        first = batch[0]
        encoded = self.encode(batch)
        # Greedy search over logits that carry per-request Gumbel noise samples exactly from the
        # temperature / top-p distribution, with one random stream per request: a reply does not
        # depend on which other requests share its batch, so a resumed run matches a fresh one.
        processors = LogitsProcessorList(
            [RequestSampler([r.seed for r in batch], first.temperature, first.top_p, self.device)]
            if first.temperature > 0
            else []
        )
        max_new_tokens = max(r.max_tokens for r in batch)
        with torch.inference_mode():
            # A text model's prompts are run one by one, without padding, into a static cache:
            # preallocated key/value tensors (the default cache grows by concatenation, which
            # copies it whole at every new token: half of a CPU decode step at 1,500 tokens of
            # context). Other models get generate's own static cache, or its default one.
            cache = None if self.processor else self._prefilled_cache(encoded, max_new_tokens)
            if cache is not None:
                extra = {self.cache_kwarg: cache}
            else:
                extra = {} if self.processor else {"cache_implementation": "static"}
            output = self.model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                repetition_penalty=first.repetition_penalty,
                pad_token_id=self.tokenizer.pad_token_id,
                stop_strings=first.stop or None,
                tokenizer=self.tokenizer,
                do_sample=False,
                logits_processor=processors,
                **extra,
            )
        prompt_len = encoded["input_ids"].shape[1]
        stop_ids = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        results = []
        for row, request in enumerate(batch):
            tokens = output[row, prompt_len:].tolist()
            cut = next((i for i, t in enumerate(tokens) if t in stop_ids), None)
            completion = (tokens if cut is None else tokens[:cut])[: request.max_tokens]
            text, stopped = cut_at_stop(
                self.tokenizer.decode(completion, skip_special_tokens=True), request.stop
            )
            ended = stopped or (cut is not None and cut <= request.max_tokens)
            results.append(
                EngineResult(
                    request_id=request.request_id,
                    text=request.prefill + text,
                    finish_reason="stop" if ended else "length",
                    prompt_tokens=int(encoded["attention_mask"][row].sum()),
                    completion_tokens=len(completion),
                )
            )
        return results

    @property
    def cache_kwarg(self) -> str:
        """The name a model's forward takes its key/value cache by: `cache` in newer
        transformers (5.24), `past_key_values` in older ones (5.19, which vLLM's CPU build
        pins): the latter silently took `cache` into **kwargs and filled nothing."""
        forward = inspect.signature(self.model.base_model.forward).parameters
        return "cache" if "cache" in forward else "past_key_values"

    def _prefilled_cache(self, encoded: Any, max_new_tokens: int) -> Any:
        """A static cache that holds the keys and values of every prompt but its last token,
        each prompt run alone (no work on padding), laid out as the left-padded batch has them:
        a prompt's tokens right-aligned, the pad slots zero (masked by the attention mask).
        `generate` then runs the last prompt column and decodes the batch together. None for a
        model whose cache is not plain full-attention layers (sliding window, linear...)."""
        from transformers import DynamicCache, StaticCache
        from transformers.cache_utils import StaticLayer

        ids, mask = encoded["input_ids"], encoded["attention_mask"]
        width = ids.shape[1]
        config = self.model.config.get_text_config(decoder=True)
        cache = StaticCache(config=config, max_cache_len=width + max_new_tokens)
        if self.model.generation_config.cache_implementation is not None or any(
            type(layer) is not StaticLayer for layer in cache.layers
        ):
            return None
        for row in range(ids.shape[0]):
            length = int(mask[row].sum())
            if length < 2:
                continue
            alone = DynamicCache(config=config)
            # Position ids 0..length-2, as the attention mask gives them in the batch.
            prompt = ids[row : row + 1, width - length : width - 1]
            self.model.base_model(input_ids=prompt, use_cache=True, **{self.cache_kwarg: alone})
            for layer, own in zip(cache.layers, alone.layers, strict=True):
                if not layer.is_initialized:  # allocates the zeroed batch tensors
                    batched = [t.expand(ids.shape[0], -1, -1, -1) for t in (own.keys, own.values)]
                    layer.lazy_initialization(*batched)
                layer.keys[row, :, width - length : width - 1] = own.keys[0]
                layer.values[row, :, width - length : width - 1] = own.values[0]
        for layer in cache.layers:
            layer.cumulative_length.fill_(width - 1)  # where the last prompt column goes
        return cache


class RequestSampler:
    """Logits processor: temperature + top-p sampling by the Gumbel-max trick, one seed per row."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float, device: str) -> None:
        import torch

        self.temperature = temperature
        self.top_p = top_p
        self.generators = [
            torch.Generator(device=device).manual_seed(stable_hash("sample", s) % 2**63)
            for s in seeds
        ]

    def __call__(self, input_ids, scores):
        import torch

        logits = scores.float() / self.temperature
        if self.top_p < 1.0:
            ordered, index = torch.sort(logits, descending=True, dim=-1)
            probs = torch.softmax(ordered, dim=-1)
            drop = probs.cumsum(dim=-1) - probs >= self.top_p  # keeps the first
            logits = logits.scatter(-1, index, ordered.masked_fill(drop, float("-inf")))
        noise = torch.stack(
            [
                torch.rand(logits.shape[-1], generator=g, device=logits.device)
                for g in self.generators
            ]
        )
        gumbel = -torch.log(-torch.log(noise.clamp(1e-20, 1.0 - 1e-7)))
        return logits + gumbel


def text_only(messages: list[dict]) -> list[dict]:
    """Messages for a text-only model: image parts are dropped, text parts joined."""
    flat = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = "\n".join(p["text"] for p in content if p.get("type") == "text")
        flat.append({**message, "content": content})
    return flat


def vision_processor(path: str) -> Any:
    """The processor of an image-text-to-text model folder (or Hub id), or None for a model
    that reads text only (its config has no vision part)."""
    from transformers import AutoConfig, AutoProcessor

    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError):
        return None  # transformers says what is wrong when the model itself is loaded
    if getattr(config, "vision_config", None) is None:
        return None
    return AutoProcessor.from_pretrained(path)


def image_urls(messages: list[dict]) -> list[str]:
    """The image URLs of OpenAI chat messages, in order."""
    return [
        part["image_url"]["url"]
        for message in messages
        if isinstance(message["content"], list)
        for part in message["content"]
        if part.get("type") == "image_url"
    ]


def vision_messages(messages: list[dict]) -> tuple[list[dict], list[Any]]:
    """OpenAI chat messages as a transformers processor's chat template reads them (content
    parts of type text and image, in order), and the images decoded from their data URLs."""
    from PIL import Image

    out, images = [], []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        parts = []
        for part in content:
            if part.get("type") == "image_url":
                images.append(Image.open(io.BytesIO(data_url_bytes(part["image_url"]["url"]))))
                parts.append({"type": "image"})
            elif part.get("type") == "text":
                parts.append({"type": "text", "text": part["text"]})
        out.append({"role": message["role"], "content": parts})
    return out, [image.convert("RGB") for image in images]


def data_url_bytes(url: str) -> bytes:
    """The bytes of a base64 data URL (what the pipeline sends); other URLs are not fetched."""
    head, _, data = url.partition(",")
    if not (head.startswith("data:") and head.endswith(";base64")):
        raise ConfigError(f"the local engine reads images from data URLs only, not {url[:40]!r}")
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error as exc:
        raise ConfigError(f"an image data URL is not valid base64: {exc}") from exc
