"""Generate: Unit rows -> Outcome rows carrying parsed question-answer pairs."""

from __future__ import annotations

import base64
from dataclasses import asdict
from pathlib import Path

from curation.config import GenerateConfig, UnitsConfig
from curation.generate.cache import client
from curation.generate.engines import ChatRequest, Engine, EngineResult
from curation.generate.parse import ReplySchema, parse_question, parse_reply
from curation.generate.prompts import (
    PromptLibrary,
    PromptMeta,
    PromptRenderError,
    PromptTemplate,
    page_excerpts,
    resolve_prompt_dir,
)
from curation.generate.spans import Span, choose_span
from curation.schema import Outcome, Reply, Unit, wants_reply
from curation.seeding import stable_hash

# Field names as prompts ask for them (the parser also accepts the short aliases q / a).
REPLY_JSON_SCHEMA = ReplySchema.model_json_schema(by_alias=False)
# The finish reason of a unit whose prompt failed to render: no model saw it.
UNRENDERED = "unrendered"


def stand_in_unit(meta: PromptMeta) -> dict:
    """A unit that the prompt of `meta` fits (pages, kind, layout), for the up-front render."""
    pages = list(range(min(max(meta.min_pages, 2), meta.max_pages or 2)))
    return {
        "unit_id": "stand-in:0",
        "kind": (meta.kinds or ["document"])[0],
        "layout": (meta.layouts or ["window"])[0],
        "pages": pages,
        "texts": [f"Stand-in text of page {page + 1}, a sentence to ask about." for page in pages],
        "images": [b"\x89PNG stand-in" for _ in pages],
    }


class QAGenerator:
    """Renders a prompt per unit, runs the engine on a batch of units, parses the replies."""

    def __init__(
        self,
        generate: GenerateConfig,
        units: UnitsConfig,
        prompts_root: Path = Path("prompts"),
        engine: Engine | None = None,
    ) -> None:
        self.cfg = generate
        self.max_chars = units.max_chars
        self.library = PromptLibrary(
            resolve_prompt_dir(generate.prompt_set, prompts_root),
            generate.prompt_weights,
            generate.question_types,
            generate.negative_share,
        )
        if not generate.images:
            self.library.require_text_prompts()
        self._engine = engine
        self.check_prompts()

    def check_prompts(self) -> None:
        """Render every prompt this generator can draw once, on a stand-in unit that fits it,
        so that a template the sandbox refuses, or one that names an unknown variable, stops
        the run before it starts (PromptRenderError naming the file). A branch only some real
        unit reaches fails at that unit's render instead, recorded as its outcome."""
        for template, weight in zip(self.library.templates, self.library.weights, strict=True):
            if weight > 0 and (self.cfg.images or not template.meta.images):
                self.request_with(template, stand_in_unit(template.meta))

    @property
    def engine(self) -> Engine:
        """The engine (with the response cache), built on first use: rendering requests for a
        Ray-stage engine (vllm) needs no model here."""
        self._engine = client(self.cfg, self._engine)
        return self._engine

    @property
    def model_name(self) -> str:
        return self._engine.model_name if self._engine is not None else self.cfg.model

    def images_sent(self, unit: dict) -> list[bytes]:
        """The page images that go with a unit's prompt (none unless `generate.images`)."""
        return unit["images"] if self.cfg.images else []

    def request_for(self, unit: dict) -> ChatRequest:
        """The chat request for one unit (prompt chosen from the seed and the unit id);
        PromptRenderError when its prompt fails to render for this unit."""
        template = self.library.choose(
            self.cfg.seed,
            unit["unit_id"],
            n_pages=len(unit["pages"]),
            kind=unit["kind"],
            images=bool(self.images_sent(unit)),
            layout=unit.get("layout") or "window",
        )
        return self.request_with(template, unit)

    def span_for(self, template: PromptTemplate, unit: dict) -> Span:
        """The page span an answer-first prompt asks a question for (the same on every run);
        PromptRenderError when the unit's pages hold no sentence that fits."""
        span = choose_span(unit["texts"], unit["pages"], self.cfg.seed, unit["unit_id"])
        if span is None:
            message = f"{template.template.filename}: no sentence on the pages to ask about"
            raise PromptRenderError(template.id, message)
        return span

    def request_with(self, template: PromptTemplate, unit: dict) -> ChatRequest:
        """The chat request for one unit with the given prompt."""
        images = self.images_sent(unit)
        with_images = bool(images)
        question_only = template.meta.output == "question"
        messages = template.render(
            pages=page_excerpts(unit["pages"], unit["texts"], self.max_chars),
            kind=unit["kind"],
            layout=unit.get("layout") or "window",
            n_pairs=self.cfg.pairs_per_unit,
            span=asdict(self.span_for(template, unit)) if question_only else None,
        )
        if with_images:
            text = {"type": "text", "text": messages[-1]["content"]}
            label = "Slide" if unit["kind"] == "slides" else "Page"
            messages[-1]["content"] = [*image_parts(unit["pages"], images, label), text]
        return ChatRequest(
            request_id=f"{unit['unit_id']}|{template.id}",
            messages=messages,
            max_tokens=self.cfg.max_tokens,
            temperature=self.cfg.temperature,
            top_p=self.cfg.top_p,
            repetition_penalty=self.cfg.repetition_penalty,
            # One seed per unit: engines that seed per request (vLLM, our local sampler) give
            # each unit its own draw, the same on every run.
            seed=stable_hash("generate", self.cfg.seed, unit["unit_id"]) % 2**31,
            prefill=template.meta.prefill,
            stop=self.stop(template),
            json_schema=REPLY_JSON_SCHEMA if template.meta.output == "json" else None,
        )

    def stop(self, template: PromptTemplate) -> list[str]:
        """Small models run on past what was asked: the next pair's marker ends a reply of
        pairs, a line break one of a single question."""
        if template.meta.output == "question":
            return ["\n"]
        return [f"\nQ{self.cfg.pairs_per_unit + 1}:"] if template.meta.output == "qa_lines" else []

    def __call__(self, units: list[dict]) -> list[dict]:
        """Outcome rows (schema.OUTCOME_SCHEMA) for a batch of Unit rows; error rows pass through."""
        requests, unrendered = {}, {}
        for unit in filter(wants_reply, units):
            try:
                requests[unit["unit_id"]] = self.request_for(unit)
            except PromptRenderError as exc:
                unrendered[unit["unit_id"]] = self.unrendered(unit, exc)
        replies = self.engine.generate(list(requests.values())) if requests else []
        results = {r.request_id: r for r in replies}
        outcomes = []
        for unit in units:
            request = requests.get(unit["unit_id"])
            result = results[request.request_id] if request else unrendered.get(unit["unit_id"])
            outcomes.append(self.outcome(unit, result))
        return outcomes

    def unrendered(self, unit: dict, exc: PromptRenderError) -> EngineResult:
        """The result of a unit whose prompt failed to render: no request, the error as its
        reply's (the outcome records it as unreadable: a reject row with the reason)."""
        return EngineResult(f"{unit['unit_id']}|{exc.prompt_id}", "", UNRENDERED, error=str(exc))

    def outcome(self, unit: dict, result: EngineResult | None = None) -> dict:
        """The Outcome row of a unit: the unit with the reply to its request (the result's
        request_id names the prompt) and the parsed pairs; an ingest error row, with no
        result, passes through with no pairs."""
        reply = (
            Reply() if not wants_reply(unit) or result is None else self._read_result(unit, result)
        )
        return Outcome(Unit.from_row(unit), reply).to_row()

    def _read_result(self, unit: dict, result: EngineResult) -> Reply:
        reply = Reply(
            prompt_id=result.request_id.split("|", 1)[1],
            model=self.model_name,
            raw_reply=result.text,
            finish_reason=result.finish_reason,
            completion_tokens=result.completion_tokens,
            prompt_tokens=result.prompt_tokens,
            images_sent=len(self.images_sent(unit)),
        )
        if result.error:
            source = "prompt not rendered" if result.finish_reason == UNRENDERED else "engine error"
            reply.parse_errors = [f"{source}: {result.error}"]
            return reply
        template = self.library.by_id.get(reply.prompt_id)
        cut_off = result.finish_reason == "length"
        unit_id = unit["unit_id"]
        question_type = template.meta.question_type if template else None
        if template is not None and template.meta.output == "question":
            span = self.span_for(template, unit)
            parsed = parse_question(
                result.text,
                span.text,
                span.page,
                cut_off,
                unit_id=unit_id,
                question_type=question_type,
            )
        else:
            parsed = parse_reply(
                result.text, cut_off=cut_off, unit_id=unit_id, question_type=question_type
            )
        reply.pairs = parsed.pairs
        reply.parse_errors = parsed.errors
        return reply


def image_mime(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def image_parts(pages: list[int], images: list[bytes], label: str = "Page") -> list[dict]:
    """OpenAI content parts for page images, each preceded by its number ("Page 3:", or
    "Slide 3:" for a deck, as the prompt's text names them)."""
    parts: list[dict] = []
    for page, data in zip(pages, images, strict=True):
        url = f"data:{image_mime(data)};base64,{base64.b64encode(data).decode('ascii')}"
        parts.append({"type": "text", "text": f"{label} {page + 1}:"})
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts
