"""The LLM judge: a model rates each pair 0-10 and pairs under the threshold are dropped.

InternVL 2.5 scores its text data 0-10 with an LLM and keeps 7 and above. The judge runs on any
engine (`engine:` in the chain entry, validated as a generate section, so it may be another
model than the generator), with a prompt from prompts/judge/. Replies are read tolerantly: JSON,
fenced JSON, JSON cut short, or prose such as "Score: 7" or "8/10". A reply with no readable
score is a rejection with the reason (or kept, with `on_unreadable: keep`), never a crash.

The page text and the pair are shown to the judge as data, each inside a fence of backticks
longer than any run of backticks in them (`data_fence`), so no text can close its fence and pass
itself off as the prompt; the template tells the judge to ignore instructions inside the fences.
Requests go through the response cache, as generation's do: a rerun sends none of them again.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator

from curation.config import ConfigError, GenerateConfig
from curation.filters.base import Filter
from curation.generate import image_parts
from curation.generate.cache import send_batched
from curation.generate.engines.base import ChatRequest, Engine, EngineResult
from curation.generate.prompts import (
    PromptLibrary,
    PromptRenderError,
    PromptTemplate,
    page_excerpts,
    resolve_prompt_dir,
)
from curation.jsonscan import json_objects
from curation.schema import Decision, Pair, UnitContext
from curation.seeding import content_id

SCORE_KEYS = ("score", "rating", "quality", "grade")
REASON_KEYS = ("reason", "explanation", "rationale", "justification", "comment")
NUMBER = r"(-?\d+(?:\.\d+)?)"
SCORE_FIELD = re.compile(
    rf"[\"']?\b(?:{'|'.join(SCORE_KEYS)})\b[\"']?\s*(?:[:=]|\bis\b|\bof\b)?\s*[\"']?{NUMBER}"
    rf"(?:\s*(?:/|out of)\s*10\b)?",
    re.IGNORECASE,
)
OUT_OF_TEN = re.compile(rf"{NUMBER}\s*(?:/|out of)\s*10\b", re.IGNORECASE)
LEADING_NUMBER = re.compile(rf"\A\s*{NUMBER}\s*(?:[.,;:)\n]|\Z)")
REASON_FIELD = re.compile(
    rf"[\"']?\b(?:{'|'.join(REASON_KEYS)})\b[\"']?\s*[:=]\s*[\"']?(?P<reason>[^\"\n]*)",
    re.IGNORECASE,
)
BACKTICK_RUN = re.compile(r"`+")
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 0, "maximum": 10},
        "reason": {"type": "string"},
    },
    "required": ["score", "reason"],
    "additionalProperties": False,
}


def judge_schema(axes: list[str]) -> dict:
    """The reply schema sent to engines that enforce one: a 0-10 score, or ratings per axis."""
    if not axes:
        return JUDGE_SCHEMA
    rating = {"type": "integer", "minimum": 1, "maximum": 5}
    return {
        "type": "object",
        "properties": {
            "ratings": {
                "type": "object",
                "properties": dict.fromkeys(axes, rating),
                "required": axes,
                "additionalProperties": False,
            },
            "reason": {"type": "string"},
        },
        "required": ["ratings", "reason"],
        "additionalProperties": False,
    }


class JudgeReplyError(ValueError):
    """A judge reply with no readable score in 0-10."""


def _score_value(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = re.match(rf"\s*{NUMBER}", value)
        return float(match.group(1)) if match else None
    return None


def _from_json(text: str) -> tuple[float, str] | None:
    """The score and reason of the first JSON object in the reply that holds a score."""
    for data in json_objects(text):
        lowered = {str(k).lower(): v for k, v in data.items()}
        score = next((_score_value(lowered[k]) for k in SCORE_KEYS if k in lowered), None)
        if score is not None:
            reason = next((str(lowered[k]) for k in REASON_KEYS if k in lowered), "")
            return score, reason
    return None


def parse_judge_reply(text: str) -> tuple[float, str]:
    """(score, reason) from a judge reply; raises JudgeReplyError when no score can be read."""
    if not text or not text.strip():
        raise JudgeReplyError("empty reply")
    found = _from_json(text)
    if found is None:
        match = SCORE_FIELD.search(text) or OUT_OF_TEN.search(text) or LEADING_NUMBER.match(text)
        if match is None:
            shown = " ".join(text.split())[:60]
            raise JudgeReplyError(f"no score in {shown!r}")
        reason_match = REASON_FIELD.search(text)
        found = (
            float(match.group(1)),
            reason_match.group("reason").strip() if reason_match else "",
        )
    score, reason = found
    if not 0 <= score <= 10:
        raise JudgeReplyError(f"score {score:g} is outside 0-10")
    return score, " ".join(reason.split())


RATINGS_KEYS = ("ratings", "scores", "rating")


def _axis_key(name: object) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def parse_judge_ratings(text: str, axes: list[str]) -> tuple[dict[str, float], str]:
    """({axis: rating 1-5}, reason) from a per-axis judge reply: JSON with the ratings under
    `ratings` (or `scores`) or at the top level, values as numbers, "4", "4/5" or
    {"score": 4}; axes named in any case, with spaces or hyphens. Raises JudgeReplyError when
    no axis can be read; a rating outside 1-5 is an error too."""
    if not text or not text.strip():
        raise JudgeReplyError("empty reply")
    wanted = {_axis_key(a): a for a in axes}
    for data in json_objects(text):
        lowered = {_axis_key(k): v for k, v in data.items()}
        inner = next((lowered[k] for k in RATINGS_KEYS if isinstance(lowered.get(k), dict)), None)
        source = {_axis_key(k): v for k, v in inner.items()} if inner else lowered
        ratings = {}
        for key, axis in wanted.items():
            value = source.get(key)
            if isinstance(value, dict):
                value = next((value[k] for k in SCORE_KEYS if k in value), None)
            rating = _score_value(value)
            if rating is not None:
                if not 1 <= rating <= 5:
                    raise JudgeReplyError(f"{axis} rating {rating:g} is outside 1-5")
                ratings[axis] = rating
        if ratings:
            reason = next((str(lowered[k]) for k in REASON_KEYS if k in lowered), "")
            return ratings, " ".join(reason.split())
    shown = " ".join(text.split())[:60]
    raise JudgeReplyError(f"no rating of {', '.join(axes)} in {shown!r}")


def data_fence(*texts: str) -> str:
    """A fence of backticks longer than any run of backticks in the texts (three at least): no
    text holds it, so none can close the fence it is shown in."""
    longest = max((len(run) for text in texts for run in BACKTICK_RUN.findall(text)), default=0)
    return "`" * max(3, longest + 1)


def judge_messages(
    template: PromptTemplate, pair: Pair, max_page_chars: int, images: bool
) -> list[dict]:
    """The judge's chat messages about one pair, text only (`request` adds the page images):
    the page text, the question and the answer fenced as data."""
    pages = (
        page_excerpts(pair.unit.pages, pair.unit.texts, max_page_chars) if pair.unit.texts else []
    )
    return template.render(
        question=pair.question,
        answer=pair.answer,
        kind=pair.unit.kind,
        pages=pages,
        fence=data_fence(pair.question, pair.answer, *(str(p["text"]) for p in pages)),
        axes=[a for a in template.meta.axes if images or not a.images],
        images=images,
    )


# What the judge's prompt is rendered on once, when the chain is loaded.
STAND_IN_PAIR = Pair(
    "",
    "A stand-in question?",
    "A stand-in answer.",
    unit=UnitContext(
        "stand-in:0",
        pages=[0, 1],
        texts=["Stand-in text of page 1.", "Stand-in text of page 2."],
    ),
)


class JudgeFilter(Filter):
    """Reject a pair the judge model scores under `threshold` (InternVL: 0-10, keep >= 7), or,
    with a prompt that names `axes` (prompts/judge/axes.j2: FineVision's and NVIDIA's), rate it
    1-5 on each axis: the ratings go into the pair's `qa_meta.ratings`; `mode: annotate` keeps
    every pair, `mode: filter` rejects below `min_ratings` (per axis) or `min_mean`.

    Without an `engine:` the entry is inactive: the chain leaves it out and says so.
    """

    type: ClassVar[str] = "judge"
    engine: GenerateConfig | None = Field(
        None, description="The judge model: a generate section (engine, model, sampling...)."
    )
    threshold: float = Field(7.0, ge=0, le=10)
    prompts: str = Field("prompts/judge", description="The folder of judge prompt templates.")
    prompt: str = Field("judge/quality", description="The template id (its front matter `id`).")
    max_page_chars: int = Field(4000, ge=200, description="Page text shown to the judge.")
    on_unreadable: Literal["reject", "keep"] = "reject"
    mode: Literal["filter", "annotate"] = Field(
        "filter",
        description="filter: reject below the thresholds; annotate: keep every pair, its "
        "ratings stored (FineVision kept everything and found it trained better).",
    )
    min_ratings: dict[str, float] = Field(
        default_factory=dict,
        description="Per-axis judge, mode filter: the lowest rating (1-5) kept on each axis.",
    )
    min_mean: float | None = Field(
        None,
        ge=1,
        le=5,
        description="Per-axis judge, mode filter: the lowest mean of the axes kept (3.8 of 5 is "
        "about InternVL's 7 of 10).",
    )
    _engine: Engine | None = PrivateAttr(None)
    _template: PromptTemplate | None = PrivateAttr(None)

    @field_validator("prompt")
    @classmethod
    def _known_template(cls, prompt: str, info: ValidationInfo) -> str:
        """The template exists and renders, once on a stand-in pair, with and without images
        as the engine may send them: a template the sandbox refuses stops the chain from
        loading (before a run starts any worker), naming the template's file."""
        try:
            folder = resolve_prompt_dir(info.data.get("prompts", "prompts/judge"))
            template = PromptLibrary(folder).named(prompt)
            engine = info.data.get("engine")
            for images in {False, bool(engine and engine.images)}:
                judge_messages(template, STAND_IN_PAIR, 4000, images)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return prompt

    def axes(self, template: PromptTemplate, images: bool = False) -> list[str]:
        """The axes this judge rates (its template's; visual ones only when images are sent)."""
        return [a.name for a in template.meta.axes if images or not a.images]

    @property
    def active(self) -> bool:
        return self.engine is not None

    def use_engine(self, engine: Engine) -> None:
        """Judge with an engine that is already loaded instead of building one (behind the
        response cache when the engine section keeps `cache` on)."""
        self._engine = engine

    def _ready(self) -> tuple[PromptTemplate, GenerateConfig]:
        """The template (checked against `min_ratings` once) and the engine section."""
        cfg = self.engine or GenerateConfig()
        if self._template is None:
            self._template = PromptLibrary(resolve_prompt_dir(self.prompts)).named(self.prompt)
            unknown = set(self.min_ratings) - {a.name for a in self._template.meta.axes}
            if unknown:
                raise ConfigError(
                    f"judge min_ratings: no axis {', '.join(sorted(unknown))} in {self.prompt} "
                    f"(its axes: {', '.join(a.name for a in self._template.meta.axes) or 'none'})"
                )
        return self._template, cfg

    def request(self, pair: Pair, template: PromptTemplate, cfg: GenerateConfig) -> ChatRequest:
        """The chat request that asks the judge about one pair: the page text, the question and
        the answer fenced as data (the fence depends on them alone, so the request, and its
        cache key, are the same on every run)."""
        images = cfg.images and len(pair.unit.images) == len(pair.unit.pages) > 0
        messages = judge_messages(template, pair, self.max_page_chars, images)
        if images:  # the pages' images before the judge's text, each after its label
            label = "Slide" if pair.unit.kind == "slides" else "Page"
            text = {"type": "text", "text": messages[-1]["content"]}
            messages[-1]["content"] = [*image_parts(pair.unit.pages, pair.unit.images, label), text]
        return ChatRequest(
            request_id=content_id(
                "judge", self.prompt, pair.unit.unit_id, pair.question, pair.answer
            ),
            messages=messages,
            **cfg.sampling(),
            prefill=template.meta.prefill,
            json_schema=(
                judge_schema(self.axes(template, images))
                if template.meta.output == "json"
                else None
            ),
        )

    def decide(self, pairs: list[Pair]) -> list[Decision]:
        if not pairs:
            return []
        template, cfg = self._ready()
        axes = self.axes(template, cfg.images)
        # A pair already rated on these axes (a rated dataset given to `curation filter` with
        # new thresholds) is decided from its ratings: the judge is not asked again.
        ask = [i for i, p in enumerate(pairs) if not axes or not set(axes) <= set(p.ratings)]
        requests, decided = {}, {}
        for i in ask:
            try:
                requests[i] = self.request(pairs[i], template, cfg)
            except PromptRenderError as exc:  # a branch of the template only this pair reaches
                decided[i] = self._unrendered(exc)
        self._engine, results = send_batched(cfg, self._engine, list(requests.values()))
        for i, result in zip(requests, results, strict=True):
            decided[i] = self._rated(result, axes) if axes else self._verdict(result)
        for i, pair in enumerate(pairs):
            if i not in decided:
                stored = {axis: pair.ratings[axis] for axis in axes}
                decided[i] = self._cut(stored, "ratings stored with the pair")
        return [decided[i] for i in range(len(pairs))]

    def _rated(self, result: EngineResult, axes: list[str]) -> Decision:
        """The Decision of a per-axis judge from its reply."""
        if result.error:
            return self._unreadable(f"engine error: {result.error}")
        try:
            ratings, reason = parse_judge_ratings(result.text, axes)
        except JudgeReplyError as exc:
            return self._unreadable(str(exc))
        return self._cut(ratings, reason)

    def _cut(self, ratings: dict[str, float], reason: str) -> Decision:
        """The ratings stored, their mean as the score; in filter mode, a rejection that names
        the axes under their thresholds."""
        mean = round(sum(ratings.values()) / len(ratings), 3)
        shown = " ".join(f"{axis}={score:g}" for axis, score in ratings.items())
        low = [
            f"{axis} {ratings[axis]:g} < {least:g}"
            for axis, least in self.min_ratings.items()
            if axis in ratings and ratings[axis] < least
        ]
        if self.min_mean is not None and mean < self.min_mean:
            low.append(f"mean {mean:g} < {self.min_mean:g}")
        passed = self.mode == "annotate" or not low
        note = f"{'; '.join(low)}: " if low and not passed else ""
        decision = Decision(self.label, passed, mean, f"{note}{shown}; {reason}"[:300])
        decision.ratings = [{"axis": a, "score": s} for a, s in ratings.items()]
        return decision

    def _verdict(self, result: EngineResult) -> Decision:
        if result.error:
            return self._unreadable(f"engine error: {result.error}")
        try:
            score, reason = parse_judge_reply(result.text)
        except JudgeReplyError as exc:
            return self._unreadable(str(exc))
        if score < self.threshold and self.mode == "filter":
            return self.reject(f"judge score {score:g} < {self.threshold:g}: {reason}"[:300], score)
        return self.keep(score)

    def _unrendered(self, exc: PromptRenderError) -> Decision:
        """A pair the judge's prompt failed to render for: not judged, so rejected in filter
        mode and kept unrated in annotate mode, with the template's error as the reason."""
        reason = f"judge prompt not rendered: {exc}"[:300]
        return Decision(self.label, self.mode == "annotate", None, reason)

    def _unreadable(self, detail: str) -> Decision:
        if self.on_unreadable == "keep" or self.mode == "annotate":
            return Decision(self.label, True, None, f"judge reply unreadable: {detail}"[:300])
        return self.reject(f"judge reply unreadable: {detail}"[:300])
