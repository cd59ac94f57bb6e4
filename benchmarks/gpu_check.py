"""GPU check: training tokens/s and MFU, and the `local` engine's generation tokens/s, on one GPU.

Run: make gpu-check   (or python3 benchmarks/gpu_check.py [--parts a,b,c] [--out DIR])
Smoke: python3 benchmarks/gpu_check.py --cpu-smoke   (tiny configs on the CPU; plumbing only)

Made for the device machine (one H100/H200, torch + transformers + accelerate, but no pydantic,
datasets, pymupdf or ray, nothing downloadable): every model is random-init from a config, the
tokenizer is the bundled SmolLM2's, saved in benchmarks/gpu_check_tokenizer/ (1.6 MB;
--make-tokenizer rewrites it), and the check is sized for under 5 minutes (the measurements keep
to --minutes, default 4). Parts:

  a. Training: random-init Idefics3 of the SmolVLM-256M and SmolVLM-Instruct (~2B) sizes, full
     fine-tuning under bf16 autocast, packing off and on, on one fixed, seeded distribution of
     multi-page samples. Tokens/s and MFU.
  b. Generation: the `local` engine (curation.generate.engines.local.LocalEngine, the class
     recipes use) on a random-init SmolLM2-1.7B-shaped Llama saved as a model folder; ~1,500
     prompt tokens, 256 new tokens with min_new_tokens = max_new_tokens, batches 1, 8 and 32,
     the pipeline's sampling settings (temperature 0.3, top-p 0.9, repetition penalty 1.1).
  c. The local engine as a VLM: the SmolVLM-256M-sized Idefics3 with 2 page images a request.

Project code: the check imports the project's own modules, not copies. Where pydantic is
missing, `curation.config` and `curation.train.config` (pydantic models, used by the modules
below only for type hints and ConfigError) are replaced by stand-ins, and the packages
`curation.generate` and `curation.generate.engines` are entered without running their
`__init__` (which loads the recipe config); everything measured is project code: the samples go
through `collate.pack_rows` / `collate.batches` (packing, position ids, padding, the Idefics3
tile batching), the models are `train.model.random_init_model` / `random_init_processor`, the
step is `train.loop.Trainer.step` (accelerate autocast, loss per answer token, gradient
clipping, fused AdamW), and generation is `LocalEngine.generate`. What the check writes itself:
the synthetic samples (token ids and random pixel tiles; no image decoding or chat template, so
data preparation is left out as in bench_train), the optimizer set-up of Trainer.__init__ (which
needs a TrainConfig), and min_new_tokens (set on the model's generation_config, since the engine
has no such option).

MFU = achieved model FLOP/s / peak FLOP/s, with the model FLOPs of a step counted as in
benchmarks/bench_train.py (useful work only; padding and attention across packed samples are
not counted; the attention term is included):
  text:   per sample of s tokens, 6 x N_text x s + 6 x L x h x s^2  (causal attention:
          12 x L x h x s/2 per token); N_text = text model parameters without the input
          embedding (lm_head included)
  vision: per tile of P patches, 6 x N_vision x P + 12 x L_v x h_v x P^2, plus
          6 x N_connector x P / scale^2 for the connector
Peaks: 989 TFLOP/s nominal dense bf16 (H100 / H200 SXM) and the bf16 matrix product measured
here at the start (8192^3, mean of 10; about 790 TFLOP/s on these machines). On the CPU smoke
run only the measured fp32 product exists, and the figures test plumbing, nothing else.

Writes part_a.json, part_b.json, part_c.json (each as soon as its part ends, so a timeout keeps
what finished) and gpu_check.md (the Markdown tables for docs/benchmarks.md) under --out
(default: $OUT on the device machine, else .cache/gpu-check). Exit status 1 if a case failed.
"""

from __future__ import annotations

import argparse
import base64
import functools
import gc
import io
import json
import os
import platform
import random
import sys
import tempfile
import time
import traceback
import types
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOKENIZER = Path(__file__).resolve().parent / "gpu_check_tokenizer"
NOMINAL_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0}
MEASURED_REFERENCE_TFLOPS = 790.0  # an 8192^3 bf16 product on the lent H200s (KINDS.md)


@dataclass(frozen=True)
class VisionLM:
    """The fields of curation.train.config.RandomInitConfig (duck-typed: that class is pydantic)."""

    hidden_size: int = 64
    intermediate_size: int = 128
    layers: int = 2
    heads: int = 2
    kv_heads: int = 2
    vision_hidden_size: int = 64
    vision_intermediate_size: int = 128
    vision_layers: int = 2
    vision_heads: int = 2
    tile_size: int = 32
    patch_size: int = 8
    scale_factor: int = 2
    max_image_side: int = 64


VLM_PRESETS = {
    "tiny": VisionLM(),
    # SmolVLM-256M-Instruct: SmolLM2-135M text model, SigLIP-B/16 at 512 px, pixel shuffle 4.
    "smolvlm-256m": VisionLM(576, 1536, 30, 9, 3, 768, 3072, 12, 12, 512, 16, 4, 2048),
    # SmolVLM-Instruct (2.2B): SmolLM2-1.7B text model, SigLIP-so400m/14 at 384 px, shuffle 3.
    "smolvlm-2b": VisionLM(2048, 8192, 24, 32, 32, 1152, 4304, 27, 16, 384, 14, 3, 1536),
}
# Text models for part b (Llama layout, the SmolLM2 tokenizer's 49,152 tokens, tied embeddings).
TEXT_PRESETS = {
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "heads": 2},
    "smollm2-1.7b": {
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 24,
        "heads": 32,
    },
}


@dataclass(frozen=True)
class Settings:
    """Sizes of one run: the GPU defaults, or tiny ones for --cpu-smoke."""

    vlm_presets: tuple[str, ...] = ("smolvlm-256m", "smolvlm-2b")
    batch_size: int = 4  # unpacked rows per training step (packed: 1 row of 4 x max_length)
    max_length: int = 2048  # tokens per sample at most
    max_tiles: int = 12  # image tiles per sample
    row_tiles: int = 48  # image tiles per packed row (the project's default)
    warmup: int = 3
    steps: int = 10
    text_preset: str = "smollm2-1.7b"
    prompt_tokens: int = 1500
    new_tokens: int = 256
    gen_batches: tuple[int, ...] = (1, 8, 32)
    vlm_engine_preset: str = "smolvlm-256m"
    vlm_batches: tuple[int, ...] = (1, 8)
    vlm_pages: int = 2
    vlm_prompt_words: int = 300
    page_size: tuple[int, int] = (425, 550)
    peak_matmul: int = 8192
    minutes: float = 4.0
    threads: int | None = None  # torch CPU threads (the engine's default: all cores)


CPU_SMOKE = Settings(
    vlm_presets=("tiny",),
    batch_size=2,
    max_length=256,
    max_tiles=4,
    row_tiles=8,
    warmup=1,
    steps=1,
    text_preset="tiny",
    prompt_tokens=160,
    new_tokens=8,
    gen_batches=(1, 2),
    vlm_engine_preset="tiny",
    vlm_batches=(2,),
    vlm_pages=2,
    vlm_prompt_words=40,
    page_size=(60, 80),
    peak_matmul=256,
    minutes=3.0,  # a cap; the smoke run takes well under a minute
    threads=1,  # on a shared 2-core machine one thread is many times faster than two
)

FILLER = (
    "the report shows revenue grew while costs fell in the third quarter of the year as the "
    "board approved a new plan for regional offices with staff training budgets and a review "
    "of supplier contracts table figure section appendix total margin forecast"
)
WORDS = FILLER.split()


# -- the project's modules, without pydantic ------------------------------------------------


def project() -> types.SimpleNamespace:
    """The project modules the check runs. Without pydantic (the device machine), the two config
    modules become stand-ins and two package __init__s are skipped (see the module docstring)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        import pydantic  # noqa: F401

        stand_ins = False
    except ImportError:
        stand_ins = True
        _install_stand_ins()
    from curation.generate.engines import base, local
    from curation.train import collate, images, loop
    from curation.train import model as train_model

    # The random-init processor takes its tokenizer from the bundled GGUF (not on the device
    # machine, and ~10 s to load): the same tokenizer, saved as a folder, instead.
    train_model._bundled_tokenizer = _saved_tokenizer
    return types.SimpleNamespace(
        collate=collate,
        images=images,
        loop=loop,
        model=train_model,
        base=base,
        local=local,
        stand_ins=stand_ins,
    )


def _install_stand_ins() -> None:
    import curation  # noqa: F401  (its __init__ holds the version only)

    config = types.ModuleType("curation.config")

    class ConfigError(ValueError):
        """Stand-in for curation.config.ConfigError."""

    config.ConfigError = ConfigError
    sys.modules["curation.config"] = config
    train_config = types.ModuleType("curation.train.config")
    train_config.TINY_RANDOM = "tiny-random"
    for name in ("RandomInitConfig", "TrainConfig", "DataConfig", "ImagesConfig", "MixtureEntry"):
        setattr(train_config, name, type(name, (), {"__doc__": "stand-in for type hints"}))
    sys.modules["curation.train.config"] = train_config
    for name in ("curation.generate", "curation.generate.engines"):
        package = types.ModuleType(name)
        package.__path__ = [str(ROOT.joinpath(*name.split(".")))]
        sys.modules[name] = package


@functools.cache
def _saved_tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(TOKENIZER))


def make_tokenizer_folder() -> None:
    """Rewrite benchmarks/gpu_check_tokenizer/ from the bundled GGUF (needs `make setup`)."""
    sys.path.insert(0, str(ROOT))
    from curation.train.model import _bundled_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        _bundled_tokenizer().save_pretrained(tmp)
        TOKENIZER.mkdir(exist_ok=True)
        tokenizer = json.loads(Path(tmp, "tokenizer.json").read_text(encoding="utf-8"))
        Path(TOKENIZER, "tokenizer.json").write_text(
            json.dumps(tokenizer, ensure_ascii=False, separators=(",", ":")), encoding="utf-8"
        )
        config = json.loads(Path(tmp, "tokenizer_config.json").read_text())
        for key in ("is_local", "local_files_only"):
            config.pop(key, None)
        config.update(tokenizer_class="PreTrainedTokenizerFast", model_max_length=8192)
        Path(TOKENIZER, "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
        template = Path(tmp, "chat_template.jinja")
        Path(TOKENIZER, "chat_template.jinja").write_text(template.read_text())
    print(f"wrote {TOKENIZER}")


# -- shared ---------------------------------------------------------------------------------


class Clock:
    """The run's time budget, shared out between the parts."""

    def __init__(self, minutes: float) -> None:
        self.start = time.perf_counter()
        self.end = self.start + minutes * 60

    def left(self) -> float:
        return self.end - time.perf_counter()

    def part_deadline(self, share: float) -> float:
        return time.perf_counter() + max(self.left(), 0) * share


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def free(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gib(device: str) -> float | None:
    import torch

    if not device.startswith("cuda"):
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


def environment(device: str, settings: Settings, stand_ins: bool | None) -> dict:
    import torch
    import transformers

    gpu = device.startswith("cuda")
    return {
        "device": torch.cuda.get_device_name() if gpu else f"CPU ({platform.machine()})",
        "mode": "gpu" if gpu else "cpu-smoke",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "config_stand_ins": stand_ins,
        "settings": asdict(settings),
    }


def matmul_tflops(device: str, n: int) -> float:
    """The achieved rate of an n^3 matrix product (bf16 on a GPU, fp32 on a CPU)."""
    import torch

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    reps = 10
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e12


def nominal_peak(device: str, given: float | None) -> float | None:
    import torch

    if given:
        return given
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name()
    return next((tf for key, tf in NOMINAL_BF16_TFLOPS.items() if key in name), None)


def run_case(name: str, errors: list, fn, *args, **kwargs) -> Any:
    """fn's result, or None with the error recorded (the other cases still run)."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # a benchmark case: report and go on
        traceback.print_exc()
        errors.append({"case": name, "error": f"{type(exc).__name__}: {exc}"[:2000]})
        return None


# -- part a: training -----------------------------------------------------------------------


def synthetic_samples(P, tokenizer, spec: VisionLM, settings: Settings, seed: int = 0):
    """An endless, seeded stream of encoded multi-page samples (collate.Encoded) with their
    stream state. Per sample: 1-4 pages of 1, 3 or 5 tiles (no split, 2x1 or 2x2 + thumbnail),
    pages dropped to stay within max_tiles; a prompt of 20-120 text tokens around the images;
    1-6 turns, questions of 8-40 tokens, answers of 5 + Exp(mean 80) tokens (at most 400);
    turns that would pass max_length are cut (at least one is kept; its answer shortened)."""
    import torch

    rng = random.Random(seed)
    per_tile = (spec.tile_size // spec.patch_size // spec.scale_factor) ** 2
    ids = tokenizer.convert_tokens_to_ids
    image, around, glob = ids("<image>"), ids("<fake_token_around_image>"), ids("<global-img>")
    rows = [ids(f"<row_{r}_col_{c}>") for r in range(1, 7) for c in range(1, 7)]
    side = spec.tile_size
    pixels = torch.randn(settings.max_tiles, 3, side, side)
    ones = torch.ones(settings.max_tiles, side, side, dtype=torch.long)

    def words(n: int) -> list[int]:
        return [rng.randrange(200, 49000) for _ in range(n)]

    emitted = 0
    while True:
        pages = [rng.choice((1, 3, 5)) for _ in range(rng.randint(1, 4))]
        while sum(pages) > settings.max_tiles:
            pages.pop()
        input_ids = words(rng.randint(10, 60))
        for tiles in pages:
            for tile in range(tiles - 1):
                input_ids += [around, rows[tile], *[image] * per_tile]
            input_ids += [around, glob, *[image] * per_tile, around]
        input_ids += words(rng.randint(10, 60))
        labels = [P.collate.IGNORE] * len(input_ids)
        for turn in range(rng.randint(1, 6)):
            question = words(rng.randint(8, 40)) if turn else []
            answer = words(min(400, 5 + int(rng.expovariate(1 / 80))))
            room = settings.max_length - len(input_ids) - len(question)
            if turn and len(answer) > room:
                break
            answer = answer[: max(room, 1)]
            input_ids += question + answer
            labels += [P.collate.IGNORE] * len(question) + answer
        emitted += 1
        sample = P.collate.Encoded(
            source="synthetic",
            input_ids=input_ids[: settings.max_length],
            labels=labels[: settings.max_length],
            pixels=[
                {"pixel_values": pixels[:tiles], "pixel_attention_mask": ones[:tiles]}
                for tiles in pages
            ],
            tiles=sum(pages),
        )
        yield sample, {"emitted": emitted}


def train_batches(P, tokenizer, spec: VisionLM, settings: Settings, packing: bool) -> list:
    """warmup + steps micro-batches of the project's packing and collation: unpacked, batch_size
    rows of one sample each, padded to the longest; packed, one row of up to batch_size x
    max_length tokens and row_tiles tiles (the same slots per step, as in bench_train and the
    README's example config: max_length 8192, packing.max_tokens 16384)."""
    from itertools import islice

    report = P.collate.DataReport()
    rows = P.collate.pack_rows(
        synthetic_samples(P, tokenizer, spec, settings),
        report,
        packing,
        settings.batch_size * settings.max_length,
        settings.row_tiles,
    )
    stream = P.collate.batches(
        rows,
        1 if packing else settings.batch_size,
        tokenizer.pad_token_id,
        P.images.Idefics3Images,
        packing,
    )
    return list(islice(stream, settings.warmup + settings.steps))


def train_case(
    P,
    accelerator,
    preset: str,
    packing: bool,
    settings: Settings,
    peaks: dict,
    deadline: float,
    checkpointing: bool,
) -> dict:
    import torch
    from transformers import get_cosine_schedule_with_warmup

    device = str(accelerator.device)
    spec = VLM_PRESETS[preset]
    processor = P.model.random_init_processor(spec)
    tokenizer = processor.tokenizer
    batch_list = train_batches(P, tokenizer, spec, settings, packing)
    with torch.device(accelerator.device):
        model = P.model.random_init_model(spec, processor, seed=0)
    model.config.use_cache = False
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    trainable_params, total_params = P.model.parameter_counts(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    # As Trainer.__init__ (which needs a TrainConfig): fused AdamW, cosine schedule.
    optimizer = torch.optim.AdamW(trainable, lr=1e-5, weight_decay=0.0, fused=True)
    scheduler = get_cosine_schedule_with_warmup(optimizer, 0, 10**6)
    step_holder = type(
        "Step",
        (),
        {name: getattr(P.loop.Trainer, name) for name in ("step", "_reduce", "_to_device")},
    )()
    step_holder.accelerator = accelerator
    step_holder.config = types.SimpleNamespace(optim=types.SimpleNamespace(max_grad_norm=1.0))
    step_holder.model, step_holder.optimizer, step_holder.scheduler = accelerator.prepare(
        model, optimizer, scheduler
    )
    try:
        for batch in batch_list[: settings.warmup]:
            step_holder.step([batch])
        sync(device)
        timed = []
        start = time.perf_counter()
        for batch in batch_list[settings.warmup :]:
            loss = step_holder.step([batch])
            timed.append(batch)
            if time.perf_counter() > deadline:
                break
        float(loss)  # waits for the last step
        sync(device)
        seconds = time.perf_counter() - start
        tokens = sum(b.tokens for b in timed)
        slots = sum(b.inputs["input_ids"].numel() for b in timed)
        flops = P.model.training_flops(accelerator.unwrap_model(step_holder.model), timed)
        achieved = flops / seconds / 1e12
        nominal, measured = peaks["nominal_tflops"], peaks["measured_tflops"]
        return {
            "preset": preset,
            "packing": "on" if packing else "off",
            "parameters": total_params,
            "trainable_parameters": trainable_params,
            "precision": accelerator.mixed_precision,
            "gradient_checkpointing": checkpointing,
            "steps": len(timed),
            "rows_per_step": timed[0].inputs["input_ids"].shape[0],
            "slots_per_row": timed[0].inputs["input_ids"].shape[1],
            "tokens": tokens,
            "samples": sum(b.samples for b in timed),
            "image_tokens": sum(
                int((b.inputs["input_ids"] == model.config.image_token_id).sum()) for b in timed
            ),
            "seconds": seconds,
            "tokens_per_s": tokens / seconds,
            "samples_per_s": sum(b.samples for b in timed) / seconds,
            "padding": 1 - tokens / slots,
            "tflops": achieved,
            "mfu_nominal": achieved / nominal if nominal else None,
            "mfu_measured": achieved / measured,
            "loss": float(loss),
            "peak_memory_gib": peak_memory_gib(device),
        }
    finally:
        accelerator.free_memory()
        del step_holder, model, optimizer, scheduler, trainable, batch_list
        free(device)


def part_a(P, device: str, settings: Settings, peaks: dict, deadline: float, errors: list):
    import torch
    from accelerate import Accelerator

    gpu = device.startswith("cuda")
    accelerator = Accelerator(
        mixed_precision="bf16" if gpu else "no", cpu=not gpu, step_scheduler_with_optimizer=False
    )
    results = []
    for preset in settings.vlm_presets:
        for packing in (False, True):
            name = f"train {preset} packing {'on' if packing else 'off'}"
            if time.perf_counter() > deadline:
                errors.append({"case": name, "error": "skipped: out of time"})
                continue
            print(f"== {name}", flush=True)
            out_of_memory = False
            try:
                result = train_case(
                    P, accelerator, preset, packing, settings, peaks, deadline, False
                )
            except torch.cuda.OutOfMemoryError:
                out_of_memory, result = True, None  # retried below, once the frames are gone
            except Exception as exc:
                traceback.print_exc()
                errors.append({"case": name, "error": f"{type(exc).__name__}: {exc}"[:2000]})
                result = None
            if out_of_memory:
                free(device)
                print("   out of memory: again with gradient checkpointing", flush=True)
                result = run_case(
                    name,
                    errors,
                    train_case,
                    P,
                    accelerator,
                    preset,
                    packing,
                    settings,
                    peaks,
                    deadline,
                    True,
                )
            if result:
                print(f"   {json.dumps(result)}", flush=True)
                results.append(result)
    for preset in settings.vlm_presets:
        mine = {r["packing"]: r for r in results if r["preset"] == preset}
        if {"on", "off"} <= mine.keys():
            mine["on"]["speedup_vs_off"] = mine["on"]["tokens_per_s"] / mine["off"]["tokens_per_s"]
    return results


def training_goals(results: list[dict]) -> dict:
    """Issue 20's goals for the ~2B config: MFU >= 40% with packing, packing >= 1.4x tokens/s
    (None where the row is missing or has no nominal peak)."""
    packed = next(
        (r for r in results if r["preset"] == "smolvlm-2b" and r["packing"] == "on"), None
    )
    mfu = packed["mfu_nominal"] if packed else None
    speedup = packed.get("speedup_vs_off") if packed else None
    return {
        "smolvlm-2b packed MFU (nominal peak) >= 40%": None if mfu is None else mfu >= 0.40,
        "smolvlm-2b packing speed-up >= 1.4x": None if speedup is None else speedup >= 1.4,
    }


# -- part b: generation with the local engine -----------------------------------------------


def text_model_folder(folder: Path, preset: str, device: str) -> Path:
    """A random-init Llama of the preset's shape with the saved tokenizer, as a model folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    tokenizer = AutoTokenizer.from_pretrained(str(TOKENIZER))
    shape = TEXT_PRESETS[preset]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape["hidden_size"],
        intermediate_size=shape["intermediate_size"],
        num_hidden_layers=shape["num_hidden_layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["heads"],
        max_position_embeddings=8192,
        rope_theta=130000.0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    free(device)
    return folder


def prompt_text(rng: random.Random, n_words: int) -> str:
    lines, words = [], [rng.choice(WORDS) for _ in range(n_words)]
    for start in range(0, len(words), 14):
        lines.append(" ".join(words[start : start + 14]) + ".")
    return "\n".join(lines)


def text_requests(P, tokenizer, settings: Settings, count: int, max_tokens: int) -> list:
    """`count` requests of about settings.prompt_tokens templated prompt tokens each, with the
    pipeline's defaults (temperature 0.3, top-p 0.9, repetition penalty 1.1, a seed each)."""
    system = "You write question-answer pairs about documents."
    task = "Write 4 question-answer pairs about the pages above, as JSON."

    def messages(text: str) -> list[dict]:
        user = f"Page 1:\n{text}\n\n{task}"
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def length(text: str) -> int:
        rendered = tokenizer.apply_chat_template(
            messages(text), tokenize=False, add_generation_prompt=True
        )
        return len(tokenizer(rendered, add_special_tokens=False)["input_ids"])

    probe = prompt_text(random.Random(0), 400)
    per_word = (length(probe) - length("")) / 400
    n_words = max(1, round((settings.prompt_tokens - length("")) / per_word))
    return [
        P.base.ChatRequest(
            request_id=f"r{index}",
            messages=messages(prompt_text(random.Random(index), n_words)),
            max_tokens=max_tokens,
            temperature=0.3,
            top_p=0.9,
            repetition_penalty=1.1,
            seed=index,
        )
        for index in range(count)
    ]


def timed_generate(engine, requests: list, new_tokens: int, device: str) -> tuple[float, list]:
    """One engine call with min_new_tokens = max_new_tokens (through the model's
    generation_config: the engine passes max_new_tokens only)."""
    engine.model.generation_config.min_new_tokens = new_tokens
    for request in requests:
        request.max_tokens = new_tokens
    engine.batch_size = len(requests)
    sync(device)
    start = time.perf_counter()
    results = engine.generate(requests)
    sync(device)
    return time.perf_counter() - start, results


def generation_case(engine, requests: list, settings: Settings, device: str) -> dict:
    batch = len(requests)
    seconds_prefill, _ = timed_generate(engine, requests, 1, device)
    seconds, results = timed_generate(engine, requests, settings.new_tokens, device)
    prompt_tokens = [r.prompt_tokens for r in results]
    decode_seconds = max(seconds - seconds_prefill, 1e-9)
    return {
        "batch": batch,
        "prompt_tokens_mean": sum(prompt_tokens) / batch,
        "prompt_tokens_max": max(prompt_tokens),
        "new_tokens": settings.new_tokens,
        "completion_tokens_min": min(r.completion_tokens for r in results),
        "errors": sum(r.finish_reason == "error" for r in results),
        "seconds_prefill_plus_1": seconds_prefill,
        "seconds": seconds,
        "prefill_tokens_per_s": sum(prompt_tokens) / seconds_prefill,
        "decode_tokens_per_s": batch * (settings.new_tokens - 1) / decode_seconds,
        "tokens_per_s": batch * settings.new_tokens / seconds,
        "peak_memory_gib": peak_memory_gib(device),
    }


def part_b(P, device: str, settings: Settings, deadline: float, errors: list, tmp: Path):
    folder = text_model_folder(tmp / "text-model", settings.text_preset, device)
    engine = P.local.LocalEngine(str(folder), batch_size=1, device=device, threads=settings.threads)
    parameters = sum(p.numel() for p in engine.model.parameters())
    warm = text_requests(P, engine.tokenizer, settings, 1, 4)
    timed_generate(engine, warm, 4, device)
    results = []
    for batch in settings.gen_batches:
        name = f"generate {settings.text_preset} batch {batch}"
        if time.perf_counter() > deadline:
            errors.append({"case": name, "error": "skipped: out of time"})
            continue
        print(f"== {name}", flush=True)
        requests = text_requests(P, engine.tokenizer, settings, batch, settings.new_tokens)
        result = run_case(name, errors, generation_case, engine, requests, settings, device)
        if result:
            result = {"model": settings.text_preset, "parameters": parameters, **result}
            print(f"   {json.dumps(result)}", flush=True)
            results.append(result)
    del engine
    free(device)
    return results


# -- part c: the local engine as a VLM ------------------------------------------------------


def page_png(rng: random.Random, size: tuple[int, int]) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for _ in range(8):
        x, y = rng.randrange(size[0] * 3 // 4), rng.randrange(size[1] * 9 // 10)
        draw.rectangle([x, y, x + size[0] // 5, y + max(2, size[1] // 40)], fill="black")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def vlm_requests(P, settings: Settings, count: int) -> list:
    """Requests as the pipeline sends them to a VLM: "Page N:" then the page's image_url."""
    out = []
    for index in range(count):
        rng = random.Random(index)
        parts: list[dict] = []
        for page in range(settings.vlm_pages):
            data = base64.b64encode(page_png(rng, settings.page_size)).decode("ascii")
            parts.append({"type": "text", "text": f"Page {page + 1}:"})
            parts.append(
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}
            )
        text = prompt_text(rng, settings.vlm_prompt_words)
        parts.append({"type": "text", "text": f"{text}\nWrite 4 question-answer pairs."})
        messages = [
            {"role": "system", "content": "You write question-answer pairs about documents."},
            {"role": "user", "content": parts},
        ]
        out.append(
            P.base.ChatRequest(
                f"v{index}",
                messages,
                max_tokens=settings.new_tokens,
                temperature=0.3,
                top_p=0.9,
                repetition_penalty=1.1,
                seed=index,
            )
        )
    return out


def part_c(P, device: str, settings: Settings, deadline: float, errors: list, tmp: Path):
    import torch

    preset = settings.vlm_engine_preset
    spec = VLM_PRESETS[preset]
    processor = P.model.random_init_processor(spec)
    folder = tmp / "vlm"
    with torch.device(device):
        model = P.model.random_init_model(spec, processor, seed=0)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    del model
    free(device)
    engine = P.local.LocalEngine(str(folder), batch_size=1, device=device, threads=settings.threads)
    if not engine.reads_images:
        raise RuntimeError("the local engine did not load the Idefics3 folder as a VLM")
    parameters = sum(p.numel() for p in engine.model.parameters())
    timed_generate(engine, vlm_requests(P, settings, 1), 4, device)  # warm-up
    results = []
    for batch in settings.vlm_batches:
        name = f"generate {preset} VLM batch {batch}"
        if time.perf_counter() > deadline:
            errors.append({"case": name, "error": "skipped: out of time"})
            continue
        print(f"== {name}", flush=True)
        requests = vlm_requests(P, settings, batch)
        encoded = engine.encode(requests)
        image_tokens = int((encoded["input_ids"] == engine.processor.image_token_id).sum())
        tiles = int((encoded["pixel_values"].flatten(2).abs().sum(-1) > 0).sum())
        result = run_case(name, errors, generation_case, engine, requests, settings, device)
        if result:
            result = {
                "model": preset,
                "parameters": parameters,
                "pages_per_request": settings.vlm_pages,
                "page_size": list(settings.page_size),
                "tiles_per_request": tiles / batch,
                "image_tokens_per_request": image_tokens / batch,
                **result,
            }
            print(f"   {json.dumps(result)}", flush=True)
            results.append(result)
    del engine
    free(device)
    return results


# -- output ---------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _sig(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}" if value >= 10 else f"{value:.3g}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def markdown(parts: dict) -> str:
    """Markdown tables of the parts written so far."""
    lines = []
    env = next((p["env"] for p in parts.values()), None)
    if env:
        lines += [
            f"Device: {env['device']} ({env['mode']}); torch {env['torch']}, transformers "
            f"{env['transformers']}, Python {env['python']}.",
            "",
        ]
    if "a" in parts:
        peaks = parts["a"]["peaks"]
        lines += [
            f"Training, full fine-tune, precision {parts['a']['precision']}; peak: "
            f"{_num(peaks['nominal_tflops'])} TFLOP/s nominal, {_sig(peaks['measured_tflops'])} "
            "measured here (matrix product).",
            "",
            "| model | params | packing | tokens/s | samples/s | padding | TFLOP/s | MFU (nominal) "
            "| MFU (measured peak) | packing speed-up | peak mem GiB |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in parts["a"]["results"]:
            speedup = f"{r['speedup_vs_off']:.2f}x" if "speedup_vs_off" in r else ""
            lines.append(
                f"| {r['preset']} | {r['parameters'] / 1e6:,.0f}M | {r['packing']} "
                f"| {_num(r['tokens_per_s'])} | {_num(r['samples_per_s'], 2)} "
                f"| {r['padding']:.0%} | {_sig(r['tflops'])} | {_pct(r['mfu_nominal'])} "
                f"| {_pct(r['mfu_measured'])} | {speedup} | {_num(r['peak_memory_gib'], 1)} |"
            )
        lines.append("")
        goals = {k: v for k, v in parts["a"].get("goals", {}).items() if v is not None}
        if goals:
            met = ", ".join(f"{k}: {'met' if v else 'not met'}" for k, v in goals.items())
            lines += [f"Goals: {met}.", ""]
    for key, title in (("b", "Generation, local engine (text)"), ("c", "Local engine, VLM")):
        if key not in parts:
            continue
        header = "| model | batch | prompt tokens | new tokens |"
        if key == "c":
            header += " pages | image tokens/request |"
        lines += [
            f"{title}: min_new_tokens = max_new_tokens, temperature 0.3, top-p 0.9.",
            "",
            header + " prefill tokens/s | decode tokens/s | new tokens/s overall | peak mem GiB |",
            "|---" * (header.count("|") + 3) + "|",
        ]
        for r in parts[key]["results"]:
            row = (
                f"| {r['model']} ({r['parameters'] / 1e6:,.0f}M) | {r['batch']} "
                f"| {_num(r['prompt_tokens_mean'])} | {r['new_tokens']} |"
            )
            if key == "c":
                row += f" {r['pages_per_request']} | {_num(r['image_tokens_per_request'])} |"
            lines.append(
                row + f" {_num(r['prefill_tokens_per_s'])} | {_num(r['decode_tokens_per_s'])} "
                f"| {_num(r['tokens_per_s'])} | {_num(r['peak_memory_gib'], 1)} |"
            )
        lines.append("")
    errors = [e for p in parts.values() for e in p["errors"]]
    if errors:
        lines += ["Errors:", ""] + [f"- {e['case']}: {e['error']}" for e in errors] + [""]
    return "\n".join(lines)


def write(out: Path, parts: dict, key: str, payload: dict) -> None:
    parts[key] = payload
    (out / f"part_{key}.json").write_text(json.dumps(payload, indent=1) + "\n")
    (out / "gpu_check.md").write_text(markdown(parts))
    print(f"wrote {out / f'part_{key}.json'} and {out / 'gpu_check.md'}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="Default: $OUT or .cache/gpu-check.")
    parser.add_argument("--cpu-smoke", action="store_true", help="Tiny configs on the CPU.")
    parser.add_argument("--parts", default="a,b,c", help="Comma-separated: a, b, c.")
    parser.add_argument("--minutes", type=float, default=None, help="Time budget (default 4).")
    parser.add_argument("--peak-tflops", type=float, default=None, help="Nominal peak, if known.")
    parser.add_argument("--make-tokenizer", action="store_true", help=make_tokenizer_folder.__doc__)
    args = parser.parse_args(argv)
    if args.make_tokenizer:
        make_tokenizer_folder()
        return 0
    parts_wanted = [p.strip() for p in args.parts.split(",") if p.strip()]
    if set(parts_wanted) - {"a", "b", "c"}:
        parser.error("--parts: a, b and/or c")
    out = args.out or Path(os.environ.get("OUT") or ROOT / ".cache" / "gpu-check")
    out.mkdir(parents=True, exist_ok=True)

    import torch

    if args.cpu_smoke:
        device, settings = "cpu", CPU_SMOKE
    elif torch.cuda.is_available():
        device, settings = "cuda", Settings()
    else:
        parser.error("no CUDA device: run with --cpu-smoke for the plumbing check")
    if args.minutes:
        settings = replace(settings, minutes=args.minutes)
    clock = Clock(settings.minutes)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    P = project()
    env = environment(device, settings, P.stand_ins)
    print(f"gpu-check: {env['device']}, torch {env['torch']}, transformers {env['transformers']}")
    measured = matmul_tflops(device, settings.peak_matmul)
    peaks = {
        "nominal_tflops": nominal_peak(device, args.peak_tflops),
        "measured_tflops": measured,
        "reference_measured_tflops": MEASURED_REFERENCE_TFLOPS,
    }
    print(f"peak: {json.dumps(peaks)}", flush=True)
    parts: dict[str, dict] = {}
    failed = False
    shares = {"a": 0.5, "b": 0.7, "c": 1.0}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        for key in parts_wanted:
            errors: list[dict] = []
            deadline = clock.part_deadline(shares[key] if key != parts_wanted[-1] else 1.0)
            start = time.perf_counter()
            print(f"== part {key} ({max(deadline - start, 0):.0f} s)", flush=True)
            payload: dict[str, Any] = {"part": key, "env": env, "errors": errors}
            if key == "a":
                payload.update(
                    title="training tokens/s and MFU, random-init Idefics3, packing off and on",
                    formula=__doc__.split("MFU = ")[1].split("Peaks:")[0].strip(),
                    peaks=peaks,
                    precision="bf16 autocast" if device == "cuda" else "fp32",
                    project_code=[
                        "curation.train.collate.pack_rows",
                        "curation.train.collate.batches",
                        "curation.train.images.Idefics3Images.batch",
                        "curation.train.model.random_init_processor",
                        "curation.train.model.random_init_model",
                        "curation.train.loop.Trainer.step",
                    ],
                )
                results = run_case(
                    "part a", errors, part_a, P, device, settings, peaks, deadline, errors
                )
            elif key == "b":
                payload.update(
                    title="local engine generation, random-init text model",
                    project_code=["curation.generate.engines.local.LocalEngine"],
                )
                results = run_case(
                    "part b", errors, part_b, P, device, settings, deadline, errors, Path(tmp)
                )
            else:
                payload.update(
                    title="local engine generation with page images, random-init Idefics3",
                    project_code=[
                        "curation.generate.engines.local.LocalEngine",
                        "curation.train.model.random_init_processor",
                        "curation.train.model.random_init_model",
                    ],
                )
                results = run_case(
                    "part c", errors, part_c, P, device, settings, deadline, errors, Path(tmp)
                )
            payload["results"] = results or []
            if key == "a":
                payload["goals"] = training_goals(payload["results"])
            payload["seconds"] = time.perf_counter() - start
            failed = failed or bool(errors) or not results
            write(out, parts, key, payload)
    print("\n" + markdown(parts))
    print(f"gpu-check: done in {time.perf_counter() - clock.start:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
