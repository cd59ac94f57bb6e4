"""The `local` engine: a transformers model in-process (CPU or GPU), batched with left padding."""

from __future__ import annotations

import os

from curation.generate.engines.base import ChatRequest, Engine, EngineResult, cut_at_stop
from curation.models import resolve_model
from curation.seeding import stable_hash


class LocalEngine(Engine):
    """Runs a causal LM with transformers; requests are batched in groups of `batch_size`."""

    def __init__(
        self,
        model: str = "bundled",
        batch_size: int = 8,
        threads: int | None = None,
        device: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(threads or os.cpu_count() or 1)
        location = resolve_model(model)
        self.model_name = location.name
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        kwargs = {"gguf_file": location.gguf_file} if location.gguf_file else {}
        self.tokenizer = AutoTokenizer.from_pretrained(location.path, **kwargs)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(location.path, dtype=dtype, **kwargs)
        self.model.to(self.device).eval()

    def generate(self, requests: list[ChatRequest]) -> list[EngineResult]:
        results: list[EngineResult] = []
        for start in range(0, len(requests), self.batch_size):
            results.extend(self._generate_batch(requests[start : start + self.batch_size]))
        return results

    def _prompt(self, request: ChatRequest) -> str:
        text = self.tokenizer.apply_chat_template(
            text_only(request.messages), tokenize=False, add_generation_prompt=True
        )
        return text + request.prefill

    def _generate_batch(self, batch: list[ChatRequest]) -> list[EngineResult]:
        import torch
        from transformers import LogitsProcessorList

        first = batch[0]
        encoded = self.tokenizer(
            [self._prompt(r) for r in batch],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        ).to(self.device)
        # Greedy search over logits that carry per-request Gumbel noise samples exactly from the
        # temperature / top-p distribution, with one random stream per request: a reply does not
        # depend on which other requests share its batch, so a resumed run matches a fresh one.
        processors = LogitsProcessorList(
            [RequestSampler([r.seed for r in batch], first.temperature, first.top_p, self.device)]
            if first.temperature > 0
            else []
        )
        with torch.inference_mode():
            output = self.model.generate(
                **encoded,
                max_new_tokens=max(r.max_tokens for r in batch),
                repetition_penalty=first.repetition_penalty,
                pad_token_id=self.tokenizer.pad_token_id,
                stop_strings=first.stop or None,
                tokenizer=self.tokenizer,
                do_sample=False,
                logits_processor=processors,
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
