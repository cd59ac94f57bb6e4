"""Prompt templates: Jinja2 files with a YAML front matter, chosen per unit deterministically."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jinja2
import yaml
from pydantic import Field, ValidationError

from curation.config import (
    ConfigError,
    LayoutName,
    QuestionType,
    StrictModel,
    describe_validation_error,
)
from curation.seeding import stable_fraction, weighted_pick

FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)


class Axis(StrictModel):
    """One axis a judge prompt rates a pair on (1-5)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    images: bool = Field(False, description="Rated only when the page images are sent.")


class PromptMeta(StrictModel):
    """The front matter of a prompt template."""

    id: str
    kind: str = "qa"
    description: str = ""
    weight: float = Field(1.0, ge=0.0)
    output: str = Field(
        "qa_lines",
        pattern="^(qa_lines|json)$",
        description="qa_lines: `Q1:/A1:` (+ `R1:` rationale, `E1:` evidence pages); json: the "
        "reply schema, sent to engines that enforce it.",
    )
    prefill: str = Field("", description="Text the assistant reply starts with (local engine).")
    min_pages: int = Field(
        1, ge=1, description="Used only for units with at least this many pages."
    )
    max_pages: int | None = Field(None, ge=1, description="... and at most this many.")
    kinds: list[str] | None = Field(
        None, description="Used only for these unit kinds (document, slides, images)."
    )
    images: bool = Field(False, description="Needs the page images (used only when they are sent).")
    question_type: QuestionType | None = Field(
        None,
        description="The type of question the prompt asks for; recorded on each pair "
        "(qa_meta.question_type), drawn by generate.question_types / negative_share.",
    )
    layouts: list[LayoutName] | None = Field(
        None, description="Used only for units of these layouts (window, page, document)."
    )
    axes: list[Axis] = Field(
        default_factory=list,
        description="A judge prompt's rating axes (1-5 each); the template lists them.",
    )

    def fits(self, n_pages: int, kind: str, images: bool, layout: str = "window") -> bool:
        """Whether this prompt suits a unit of `n_pages` pages of `kind` and `layout`."""
        return (
            self.min_pages <= n_pages <= (self.max_pages or n_pages)
            and (self.kinds is None or kind in self.kinds)
            and (images or not self.images)
            and (self.layouts is None or layout in self.layouts)
        )


def split_front_matter(text: str) -> tuple[str, str]:
    """(front matter YAML, template body); the front matter is empty when absent."""
    match = FRONT_MATTER.match(text)
    return (match.group(1), text[match.end() :]) if match else ("", text)


class FrontMatterLoader(jinja2.FileSystemLoader):
    """Loads templates with their front matter removed, so `extends` and `include` see only Jinja."""

    def get_source(self, environment: jinja2.Environment, template: str):  # type: ignore[override]
        source, filename, uptodate = super().get_source(environment, template)
        return split_front_matter(source)[1], filename, uptodate


@dataclass(frozen=True)
class PromptTemplate:
    """One prompt: its metadata and the Jinja template with `system` and `user` blocks."""

    meta: PromptMeta
    template: jinja2.Template

    @property
    def id(self) -> str:
        return self.meta.id

    def render(self, **context: object) -> list[dict[str, str]]:
        """Chat messages (system, user) for the given context."""
        ctx = self.template.new_context(dict(context))
        # Rendering once runs `extends`, which registers the parent's blocks in the context.
        "".join(self.template.root_render_func(ctx))
        messages = []
        for role in ("system", "user"):
            if role not in ctx.blocks:
                raise ConfigError(f"prompt '{self.id}': template has no '{role}' block")
            content = "".join(ctx.blocks[role][0](ctx)).strip()
            if content:
                messages.append({"role": role, "content": content})
        return messages


REPO_ROOT = Path(__file__).resolve().parents[2]  # the shipped prompts/ (editable install)


def resolve_prompt_dir(prompt_set: str, prompts_root: Path = Path("prompts")) -> Path:
    """A prompt folder (a generation set, the judge's): given as a path, or by name under
    `prompts_root`; a relative one not found here is looked for under the repository root, so
    runs started from another folder find the shipped prompts."""
    direct = Path(prompt_set)
    candidates = [direct, prompts_root / prompt_set]
    candidates += [REPO_ROOT / c for c in candidates if not c.is_absolute()]
    folder = next((c for c in candidates if c.is_dir()), None)
    if folder is None:
        raise ConfigError(
            f"prompt set '{prompt_set}': no folder {direct} or {prompts_root / prompt_set}"
        )
    return folder


class PromptLibrary:
    """The templates of one prompt set (files not starting with '_'), with weights."""

    def __init__(
        self,
        folder: Path,
        weights: dict[str, float] | None = None,
        question_types: dict[str, float] | None = None,
        negative_share: float = 0.0,
    ) -> None:
        env = jinja2.Environment(
            loader=FrontMatterLoader(str(folder)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        self.templates: list[PromptTemplate] = []
        for path in sorted(folder.glob("*.j2")):
            if path.name.startswith("_"):
                continue
            meta_text = split_front_matter(path.read_text(encoding="utf-8"))[0]
            try:
                meta = PromptMeta.model_validate(yaml.safe_load(meta_text) or {})
            except ValidationError as exc:
                raise ConfigError(describe_validation_error(path, exc)) from exc
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: invalid front matter: {exc}") from exc
            self.templates.append(PromptTemplate(meta, env.get_template(path.name)))
        if not self.templates:
            raise ConfigError(f"prompt set {folder}: no templates (*.j2 not starting with '_')")
        overrides = weights or {}
        unknown = sorted(set(overrides) - {t.id for t in self.templates})
        if unknown:
            raise ConfigError(f"prompt_weights: unknown prompt ids {unknown} in {folder}")
        self.weights = [overrides.get(t.id, t.meta.weight) for t in self.templates]
        if sum(self.weights) <= 0:
            raise ConfigError(f"prompt set {folder}: all weights are zero")
        self.folder = folder
        self.question_types = question_types or {}
        self.negative_share = negative_share
        self.by_id = {t.id: t for t in self.templates}
        declared = {t.meta.question_type for t in self.templates}
        missing = sorted(set(self.question_types) - declared)
        if missing:
            raise ConfigError(
                f"generate.question_types: no prompt in {folder} asks for {missing} "
                f"(the set declares {sorted(t for t in declared if t)})"
            )

    def require_text_prompts(self) -> None:
        """Without images, a unit no image prompt fits falls back on the text-only prompts:
        there must be one with a weight."""
        if not any(
            w > 0 and not t.meta.images for t, w in zip(self.templates, self.weights, strict=True)
        ):
            raise ConfigError(
                f"prompt set {self.folder}: every weighted prompt needs page images; set "
                "generate.images: true or give a text prompt a weight"
            )

    def choose(
        self,
        seed: int,
        unit_id: str,
        n_pages: int = 1,
        kind: str = "document",
        images: bool = False,
        layout: str = "window",
    ) -> PromptTemplate:
        """The template for a unit: a weighted pick among those that fit it, fixed by the seed
        and the unit id. When none fits (a one-page unit in a cross-page set), all those that
        need no images are used.

        With question types: a share of units (`negative_share`) gets a not_answerable prompt
        when one fits; the others draw a type by `question_types` among the types of the
        fitting prompts, then a prompt of that type by weight. Without types the pick is over
        the answerable prompts by weight, as before types existed (so units keep their prompts).
        """
        weighted = [(t, w) for t, w in zip(self.templates, self.weights, strict=True) if w > 0]
        pool = [(t, w) for t, w in weighted if t.meta.fits(n_pages, kind, images, layout)] or [
            (t, w) for t, w in weighted if not t.meta.images
        ]
        negatives = [(t, w) for t, w in pool if t.meta.question_type == "not_answerable"]
        answerable = [(t, w) for t, w in pool if t.meta.question_type != "not_answerable"]
        if negatives and (
            not answerable or stable_fraction("negative", seed, unit_id) < self.negative_share
        ):
            return weighted_pick(negatives, "prompt", seed, unit_id)
        types = [  # in name order: the recipe's key order must not change the draw
            (name, weight)
            for name, weight in sorted(self.question_types.items())
            if weight > 0 and any(t.meta.question_type == name for t, _ in answerable)
        ]
        if types:
            chosen = weighted_pick(types, "question_type", seed, unit_id)
            answerable = [(t, w) for t, w in answerable if t.meta.question_type == chosen]
        return weighted_pick(answerable, "prompt", seed, unit_id)


def page_excerpts(pages: list[int], texts: list[str], max_chars: int) -> list[dict[str, object]]:
    """Pages for the template (1-based numbers), each cut to an equal share of max_chars."""
    share = max_chars // max(len(texts), 1)
    return [
        {"number": page + 1, "text": text[:share].rstrip()}
        for page, text in zip(pages, texts, strict=True)
    ]
