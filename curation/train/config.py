"""Fine-tune configs (train/*.yaml): pydantic models, defaults from Mantis, Leopard and InternVL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from curation.config import QuestionType, StrictModel, load_model

TINY_RANDOM = "tiny-random"
Rating = Annotated[float, Field(ge=1, le=5)]  # a per-axis judge's scale


class RandomInitConfig(StrictModel):
    """Sizes of the random-init Idefics3 built when `model.name` is 'tiny-random' (no download).

    The defaults are tiny (CPU tests); the benchmark uses SmolVLM-256M and ~2B sizes.
    """

    hidden_size: int = Field(64, ge=8)
    intermediate_size: int = Field(128, ge=8)
    layers: int = Field(2, ge=1)
    heads: int = Field(2, ge=1)
    kv_heads: int = Field(2, ge=1)
    vision_hidden_size: int = Field(64, ge=8)
    vision_intermediate_size: int = Field(128, ge=8)
    vision_layers: int = Field(2, ge=1)
    vision_heads: int = Field(2, ge=1)
    tile_size: int = Field(32, ge=8, description="Side of one image tile in pixels.")
    patch_size: int = Field(8, ge=1)
    scale_factor: int = Field(
        2, ge=1, description="Pixel shuffle: tokens per tile shrink by its square."
    )
    max_image_side: int = Field(
        64, ge=8, description="Longest side an image is resized to at most."
    )


class ModelConfig(StrictModel):
    """Which VLM to fine-tune and how to load it."""

    name: str = Field(
        "HuggingFaceTB/SmolVLM-256M-Instruct",
        description="A Hub model id or local folder (Idefics3 / SmolVLM, or Qwen2-VL), "
        "or 'tiny-random': a tiny random-init Idefics3 with the bundled SmolLM2 tokenizer.",
    )
    revision: str | None = None
    attn_implementation: str | None = Field(
        None, description="sdpa (default), eager, or flash_attention_2 on GPUs that have it."
    )
    gradient_checkpointing: bool = False
    freeze_vision: bool = Field(
        False, description="Full fine-tuning: keep the vision tower and connector frozen."
    )
    random_init: RandomInitConfig = Field(default_factory=RandomInitConfig)


class LoraConfig(StrictModel):
    """LoRA / DoRA / QLoRA through peft; by default on the language model only."""

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    dora: bool = Field(False, description="Weight-decomposed LoRA (use_dora).")
    qlora: bool = Field(
        False,
        description="Load the base in 4-bit NF4 (bitsandbytes, CUDA only) and train LoRA on it.",
    )
    target_modules: str | None = Field(
        None,
        description="Regex over module names (default: the text model's attention and MLP "
        "projections; a bare 'q_proj' would also hit the vision tower).",
    )


class QuestionTypesCut(StrictModel):
    """Which question types of an entry are trained on: a list to keep, or a list to leave out.
    A pair without a stored type is kept by `exclude` and dropped by `include`."""

    include: list[QuestionType] | None = Field(None, min_length=1)
    exclude: list[QuestionType] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_list(self) -> QuestionTypesCut:
        if (self.include is None) == (self.exclude is None):
            raise ValueError("give either include or exclude")
        return self

    def keeps(self, question_type: str | None) -> bool:
        if self.include is not None:
            return question_type in self.include
        return question_type not in (self.exclude or [])


class MixtureEntry(StrictModel):
    """One dataset of the training mixture, and the cuts on its pairs (applied while streaming,
    from what each pair's `qa_meta` stores)."""

    path: str | None = Field(
        None, description="A curated dataset folder, e.g. out/<recipe> (make recipes builds it)."
    )
    hub: str | None = Field(None, description="A Hub dataset id in the same layout.")
    data_files: str = Field(
        "data/*.parquet", description="Parquet shards inside the folder or Hub repo (a glob)."
    )
    name: str | None = Field(None, description="Label in logs and reports (default: folder name).")
    weight: float | None = Field(None, gt=0, description="Relative sampling probability.")
    repeat_time: float | None = Field(
        None,
        gt=0,
        description="InternVL style: r < 1 subsamples, r > 1 repeats (probability ~ r x rows).",
    )
    max_samples: int | None = Field(None, ge=1, description="Use only the first N rows.")
    max_images: int | None = Field(
        None, ge=1, description="Samples with more images than this are dropped and counted."
    )
    optional: bool = Field(False, description="Skip with a warning when the folder is missing.")
    revision: str | None = Field(None, description="Hub dataset revision.")
    min_ratings: dict[str, Rating] = Field(
        default_factory=dict,
        description="Per axis, the lowest stored judge rating (1-5) of a pair that is trained on "
        "(qa_meta.ratings), e.g. {correctness: 4}.",
    )
    min_rating_mean: Rating | None = Field(
        None, description="The lowest mean of a pair's stored ratings (all its axes) trained on."
    )
    min_scores: dict[str, float] = Field(
        default_factory=dict,
        description="Per filter (its label in qa_meta.scores, e.g. grounding, judge), the lowest "
        "stored score of a pair that is trained on. Shards keep each filter's score, not a "
        "chain's pass/fail decisions: these thresholds re-cut on what is stored.",
    )
    unrated: Literal["keep", "drop"] = Field(
        "keep",
        description="A pair with no stored value for a threshold above (an axis of min_ratings, "
        "any rating for min_rating_mean, a filter of min_scores): kept, or dropped.",
    )
    question_types: QuestionTypesCut | None = Field(
        None, description="{include: [...]} or {exclude: [...]} of the question types."
    )
    max_pairs_per_sample: int | None = Field(
        None,
        ge=1,
        description="Keep at most N of a sample's pairs that pass the cuts, drawn anew each "
        "epoch by the seed, in their order.",
    )

    @model_validator(mode="after")
    def _weight_or_repeat(self) -> MixtureEntry:
        if self.weight is not None and self.repeat_time is not None:
            raise ValueError("give either weight or repeat_time, not both")
        if (self.path is None) == (self.hub is None):
            raise ValueError("give either path (a local folder) or hub (a dataset id)")
        return self

    def has_cuts(self) -> bool:
        """Whether any pair of this entry may be cut (then its `qa_meta` is read)."""
        return bool(
            self.min_ratings
            or self.min_rating_mean is not None
            or self.min_scores
            or self.question_types is not None
            or self.max_pairs_per_sample is not None
        )

    def label(self) -> str:
        return self.name or Path(str(self.path or self.hub).rstrip("/")).name


class ImagesConfig(StrictModel):
    """The per-sample image budget (Leopard / InternVL): tiles split across a sample's images."""

    max_tiles: int = Field(
        50,
        ge=1,
        description="Tiles per sample (Leopard: 50), split across its images in proportion to "
        "their area; every image gets at least one.",
    )
    max_tiles_per_image: int | None = Field(
        None, ge=1, description="Cap per image (default: what the processor's own size allows)."
    )
    tile_size: int | None = Field(
        None,
        ge=8,
        description="Tile side in pixels (default: the processor's, e.g. 512 for SmolVLM; "
        "Qwen2-VL: 448, its pixel budget is tiles x tile_size^2).",
    )
    do_image_splitting: bool = Field(
        True, description="Idefics3: split large images into tiles plus a thumbnail."
    )


class PackingConfig(StrictModel):
    """Pack several samples into one sequence under a token limit and an image limit (InternVL)."""

    enabled: bool = False
    max_tokens: int | None = Field(None, ge=16, description="Default: data.max_length.")
    max_tiles: int = Field(48, ge=1, description="Image tiles per packed sequence (InternVL: 48).")


class EvalConfig(StrictModel):
    """A held-out split (a stable hash of each sample id) and how often its loss is measured."""

    fraction: float = Field(0.02, ge=0, lt=1, description="Share of each dataset held out.")
    max_samples: int = Field(64, ge=0, description="At most this many held-out samples are used.")
    every_steps: int | None = Field(
        None, ge=1, description="Eval loss every N steps (default: at checkpoints and the end)."
    )


class DataConfig(StrictModel):
    """How mixture rows become training sequences."""

    max_length: int = Field(
        4096, ge=16, description="Tokens per sample, image tokens included (Mantis: 8,192)."
    )
    overlong: Literal["truncate", "drop"] = Field(
        "truncate",
        description="truncate: keep the whole question-answer turns that fit (the images always "
        "stay); drop: skip the sample. Either way the count is reported.",
    )
    images: ImagesConfig = Field(default_factory=ImagesConfig)
    packing: PackingConfig = Field(default_factory=PackingConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)


class OptimConfig(StrictModel):
    """AdamW with a cosine schedule and linear warmup (Leopard: lr 1e-5, 3% warmup)."""

    lr: float = Field(1e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    max_grad_norm: float | None = Field(1.0, gt=0)


class ScheduleConfig(StrictModel):
    """Steps, batch and checkpoints."""

    max_steps: int = Field(ge=1, description="Optimizer steps.")
    batch_size: int = Field(1, ge=1, description="Sequences per device per micro-batch.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    log_every: int = Field(1, ge=1)
    save_every: int = Field(500, ge=1, description="Checkpoint every N steps (and at the end).")
    save_total_limit: int | None = Field(2, ge=1, description="Older checkpoints are removed.")


class TrainConfig(StrictModel):
    """A fine-tune run: model, mixture, data rules, optimizer, schedule, what to save."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    output_dir: str | None = Field(None, description="Default: out/train/<name>.")
    seed: int = 0
    model: ModelConfig = Field(default_factory=ModelConfig)
    finetune: Literal["lora", "full"] = "lora"
    lora: LoraConfig = Field(default_factory=LoraConfig)
    mixture: list[MixtureEntry] = Field(min_length=1)
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto: bf16 mixed precision where the GPU has it, fp32 on CPU."
    )
    save: Literal["auto", "adapter", "merged", "full"] = Field(
        "auto",
        description="Final weights: adapter (LoRA only), merged (LoRA folded into the base), "
        "full (the whole model); auto = adapter for LoRA, full otherwise.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        weights = [entry.weight is not None for entry in self.mixture]
        if any(weights) and not all(weights):
            raise ValueError("mixture: give a weight to every entry, or to none (then repeat_time)")
        if self.finetune == "full" and self.save in ("adapter", "merged"):
            raise ValueError(f"save: '{self.save}' needs finetune: lora")
        if self.lora.qlora and self.finetune != "lora":
            raise ValueError("lora.qlora needs finetune: lora")
        labels = [entry.label() for entry in self.mixture]
        if len(set(labels)) != len(labels):
            raise ValueError(f"mixture: two entries share a name {labels}; set `name:` on one")
        return self

    def output_path(self) -> Path:
        return Path(self.output_dir) if self.output_dir else Path("out") / "train" / self.name

    def final_save(self) -> str:
        if self.save != "auto":
            return self.save
        return "adapter" if self.finetune == "lora" else "full"


def load_train_config(path: Path | str) -> TrainConfig:
    """Load and validate a train config YAML file."""
    return load_model(path, TrainConfig)
