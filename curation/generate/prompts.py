"""Prompt templates: Jinja2 files with a YAML front matter, chosen per unit deterministically.

A prompt set may come from anyone (a shared folder, a download), so templates render in Jinja2's
immutable sandbox: a template reaches only the values it is given and safe attributes of them (no
`__globals__`, no methods that change a value), and what it tries beyond that fails its render as
a PromptRenderError naming its file, never runs. The text of recipes and chains is never
rendered as a template.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass
from pathlib import Path

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import Field, ValidationError

from curation.config import (
    ConfigError,
    LayoutName,
    QuestionType,
    StrictModel,
    describe_validation_error,
    locate,
)
from curation.seeding import stable_fraction, weighted_pick
from curation.yamlfile import parse_yaml, read_text

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
        pattern="^(qa_lines|json|question)$",
        description="qa_lines: `Q1:/A1:` (+ `R1:` rationale, `E1:` evidence pages); json: the "
        "reply schema, sent to engines that enforce it; question (answer-first): one question "
        "for the page span the pipeline chose (`span.text`, `span.page` in the template), "
        "which is its answer.",
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
    """Loads templates with their front matter blanked out, so `extends` and `include` see only
    Jinja, and the line numbers of errors are those of the file."""

    def get_source(self, environment: jinja2.Environment, template: str):  # type: ignore[override]
        source, filename, uptodate = super().get_source(environment, template)
        body = split_front_matter(source)[1]
        return "\n" * source[: len(source) - len(body)].count("\n") + body, filename, uptodate


class PromptRenderError(ConfigError):
    """A prompt template that failed to render: the sandbox refused what it tried (an unsafe
    attribute or call), or it names a variable it is not given, or its own code failed. The
    message names the template's file and line."""

    def __init__(self, prompt_id: str, message: str) -> None:
        super().__init__(message)
        self.prompt_id = prompt_id


def failed_at(exc: BaseException, folder: Path) -> str:
    """'file, line N' of the innermost template of `folder` in the traceback (after Jinja2
    rewrote it into template lines), or ''."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if Path(frame.filename).parent == folder
    ]
    return f"{frames[-1].filename}, line {frames[-1].lineno}" if frames else ""


@dataclass(frozen=True)
class PromptTemplate:
    """One prompt: its metadata and the Jinja template with `system` and `user` blocks."""

    meta: PromptMeta
    template: jinja2.Template

    @property
    def id(self) -> str:
        return self.meta.id

    def render(self, **context: object) -> list[dict[str, str]]:
        """Chat messages (system, user) for the given context; PromptRenderError when the
        template fails (whatever it raises: a template is code its author wrote)."""
        try:
            ctx = self.template.new_context(dict(context))
            # Rendering once runs `extends`, which registers the parent's blocks in the context.
            "".join(self.template.root_render_func(ctx))
            blocks = {
                role: "".join(ctx.blocks[role][0](ctx)).strip()
                for role in ("system", "user")
                if role in ctx.blocks
            }
        except Exception as exc:
            raise self._failed(exc) from exc
        missing = [role for role in ("system", "user") if role not in blocks]
        if missing:
            message = f"{self.template.filename}: prompt '{self.id}' has no '{missing[0]}' block"
            raise PromptRenderError(self.id, message)
        return [{"role": role, "content": text} for role, text in blocks.items() if text]

    def _failed(self, exc: Exception) -> PromptRenderError:
        """The error of a failed render, naming the template file and line where it failed."""
        filename, where = str(self.template.filename), ""
        try:
            self.template.environment.handle_exception()  # the traceback in template lines
        except Exception as rewritten:
            where = failed_at(rewritten, Path(filename).parent)
        return PromptRenderError(self.id, f"{where or filename}: {exc}")


def resolve_prompt_dir(prompt_set: str, prompts_root: Path = Path("prompts")) -> Path:
    """A prompt folder (a generation set, the judge's), absolute: given as a path, or by name
    under `prompts_root`; each found here first, else among the shipped prompts (`locate`)."""
    direct = Path(prompt_set)
    candidates = [locate(direct), locate(prompts_root / prompt_set)]
    folder = next((c for c in candidates if c.is_dir()), None)
    if folder is None:
        raise ConfigError(
            f"prompt set '{prompt_set}': no folder {direct} or {prompts_root / prompt_set}, "
            "here or among the shipped prompts"
        )
    return folder.resolve()


class PromptLibrary:
    """The templates of one prompt set (files not starting with '_'), with weights."""

    def __init__(
        self,
        folder: Path,
        weights: dict[str, float] | None = None,
        question_types: dict[str, float] | None = None,
        negative_share: float = 0.0,
    ) -> None:
        env = ImmutableSandboxedEnvironment(
            loader=FrontMatterLoader(str(folder)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        self.templates: list[PromptTemplate] = []
        for path in sorted(folder.glob("*.j2")):
            if path.name.startswith("_"):
                continue
            meta_text = split_front_matter(read_text(path))[0]
            try:
                meta = PromptMeta.model_validate(parse_yaml(meta_text, path) or {})
            except ValidationError as exc:
                raise ConfigError(describe_validation_error(path, exc)) from exc
            try:
                template = env.get_template(path.name)
            except jinja2.TemplateSyntaxError as exc:
                raise ConfigError(f"{path}, line {exc.lineno}: {exc.message}") from exc
            self.templates.append(PromptTemplate(meta, template))
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

    def named(self, prompt_id: str) -> PromptTemplate:
        """The template with this id; ConfigError naming the folder and the ids it holds."""
        if prompt_id not in self.by_id:
            found = ", ".join(self.by_id)
            raise ConfigError(f"no template '{prompt_id}' in {self.folder} (found: {found})")
        return self.by_id[prompt_id]

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
