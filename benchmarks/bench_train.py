"""Training throughput of `curation train`: tokens/s and MFU of the training step for random-init
Idefics3 models of SmolVLM sizes, with packing on and off, on synthetic multi-page samples.

Run: make bench-train   (or .venv/bin/python benchmarks/bench_train.py [--preset P ...])
On a GPU the defaults are the SmolVLM-256M and ~2B (SmolVLM-Instruct) sizes in bf16; on a CPU the
tiny preset in fp32. Batches are encoded before the clock starts, so the figures are the model's
step (forward, backward, AdamW), not data preparation. Prints a Markdown table.

MFU counts useful FLOPs only: 6 x parameters per token for the text model (lm_head included, the
embedding lookup not) and per patch for the vision tower, plus attention within each sample
(causal for text); padding and cross-sample attention are not counted. Peak: --peak-tflops, or
the device's bf16 dense figure where it is known.
"""

from __future__ import annotations

import argparse
import io
import platform
import random
import tempfile
import time
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from curation.schema import SAMPLE_SCHEMA
from curation.train.collate import DataReport
from curation.train.config import RandomInitConfig, TrainConfig
from curation.train.feed import rank_batches
from curation.train.loop import Trainer
from curation.train.model import training_flops

PRESETS = {
    "tiny": RandomInitConfig(),
    # SmolVLM-256M-Instruct: SmolLM2-135M text model, SigLIP-B/16 at 512 px, pixel shuffle 4.
    "smolvlm-256m": RandomInitConfig(
        hidden_size=576,
        intermediate_size=1536,
        layers=30,
        heads=9,
        kv_heads=3,
        vision_hidden_size=768,
        vision_intermediate_size=3072,
        vision_layers=12,
        vision_heads=12,
        tile_size=512,
        patch_size=16,
        scale_factor=4,
        max_image_side=2048,
    ),
    # SmolVLM-Instruct (2.2B): SmolLM2-1.7B text model, SigLIP-so400m/14 at 384 px, shuffle 3.
    "smolvlm-2b": RandomInitConfig(
        hidden_size=2048,
        intermediate_size=8192,
        layers=24,
        heads=32,
        kv_heads=32,
        vision_hidden_size=1152,
        vision_intermediate_size=4304,
        vision_layers=27,
        vision_heads=16,
        tile_size=384,
        patch_size=14,
        scale_factor=3,
        max_image_side=1536,
    ),
}
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}
WORDS = [
    "the",
    "report",
    "shows",
    "revenue",
    "grew",
    "while",
    "costs",
    "fell",
    "in",
    "the",
    "third",
    "quarter",
    "of",
    "year",
]


def page_png(rng: random.Random, landscape: bool) -> bytes:
    """A page-shaped image (letter at 100 dpi, or a 16:9 slide) with a few dark blocks."""
    size = (1100, 620) if landscape else (850, 1100)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randrange(size[0] - 200), rng.randrange(size[1] - 60)
        draw.rectangle([x, y, x + rng.randrange(50, 200), y + rng.randrange(10, 60)], fill="black")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def write_synthetic(folder: Path, rows: int, seed: int = 0) -> Path:
    """Docmatix-layout rows: 1-4 pages, 1-6 question-answer turns, answers of 5-250 words."""
    rng = random.Random(seed)
    table = []
    for index in range(rows):
        landscape = rng.random() < 0.3
        pages = rng.randint(1, 4)
        turns = rng.randint(1, 6)
        table.append(
            {
                "id": f"synthetic-{index}",
                "images": [{"bytes": page_png(rng, landscape), "path": None} for _ in range(pages)],
                "texts": [
                    {
                        "user": " ".join(rng.choices(WORDS, k=rng.randint(6, 20))) + "?",
                        "assistant": " ".join(
                            rng.choices(WORDS, k=int(min(250, 5 + rng.expovariate(1 / 60))))
                        ),
                        "source": "synthetic",
                    }
                    for _ in range(turns)
                ],
            }
        )
    (folder / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.Table.from_pylist(table, schema=SAMPLE_SCHEMA), folder / "data" / "train.parquet"
    )
    return folder


def peak_tflops(given: float | None) -> float | None:
    import torch

    if given:
        return given
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((tf for key, tf in PEAK_BF16_TFLOPS.items() if key in name), None)


def measure(args, preset: str, packing: bool, data: Path, out: Path) -> dict:
    import torch

    gpu = torch.cuda.is_available()
    capacity = args.batch_size * args.max_length
    config = TrainConfig.model_validate(
        {
            "name": f"bench-{preset}-{'packed' if packing else 'padded'}",
            "output_dir": str(out),
            "model": {
                "name": "tiny-random",
                "random_init": PRESETS[preset].model_dump(),
                "attn_implementation": args.attn,
                "gradient_checkpointing": gpu and preset != "tiny",
            },
            "finetune": "full",
            "mixture": [{"path": str(data)}],
            "data": {
                "max_length": args.max_length,
                "images": {"max_tiles": args.max_tiles},
                "packing": {
                    "enabled": packing,
                    "max_tokens": capacity,
                    "max_tiles": args.max_tiles * args.batch_size,
                },
                "eval": {"fraction": 0},
            },
            "schedule": {"max_steps": 10**6, "batch_size": 1 if packing else args.batch_size},
            "precision": "auto" if gpu else "fp32",
        }
    )
    trainer = Trainer(config, log=lambda _message: None)
    stream = rank_batches(trainer.mixture, trainer.encoder, config, None, DataReport())
    batches = list(islice(stream, args.warmup + args.steps))
    for batch in batches[: args.warmup]:
        trainer.step([batch])
    timed = batches[args.warmup :]
    if gpu:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for batch in timed:
        trainer.step([batch])
    if gpu:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tokens = sum(b.tokens for b in timed)
    slots = sum(b.inputs["input_ids"].numel() for b in timed)
    peak = peak_tflops(args.peak_tflops)
    flops = training_flops(trainer.accelerator.unwrap_model(trainer.model), timed)
    result = {
        "preset": preset,
        "packing": "on" if packing else "off",
        "tokens/s": tokens / seconds,
        "samples/s": sum(b.samples for b in timed) / seconds,
        "padding": 1 - tokens / slots,
        "TFLOP/s": flops / seconds / 1e12,
        "MFU": flops / seconds / (peak * 1e12) if peak else None,
    }
    del trainer
    if gpu:
        torch.cuda.empty_cache()
    return result


def main() -> None:
    import torch

    gpu = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--preset",
        action="append",
        choices=sorted(PRESETS),
        help="Repeatable (default: smolvlm-256m and smolvlm-2b on a GPU, tiny on a CPU).",
    )
    parser.add_argument("--packing", choices=["on", "off", "both"], default="both")
    parser.add_argument("--steps", type=int, default=20 if gpu else 5)
    parser.add_argument("--warmup", type=int, default=3 if gpu else 1)
    parser.add_argument("--batch-size", type=int, default=4, help="Unpacked rows per step.")
    parser.add_argument("--max-length", type=int, default=4096 if gpu else 512)
    parser.add_argument("--max-tiles", type=int, default=12 if gpu else 8, help="Per sample.")
    parser.add_argument("--attn", default="sdpa", help="sdpa, eager or flash_attention_2.")
    parser.add_argument("--rows", type=int, default=400 if gpu else 60, help="Synthetic rows.")
    parser.add_argument("--peak-tflops", type=float, default=None)
    args = parser.parse_args()
    presets = args.preset or (["smolvlm-256m", "smolvlm-2b"] if gpu else ["tiny"])
    modes = {"on": [True], "off": [False], "both": [False, True]}[args.packing]
    device = torch.cuda.get_device_name() if gpu else f"CPU ({platform.processor() or 'x86_64'})"
    print(f"device: {device}; torch {torch.__version__}; steps {args.steps} after {args.warmup}")
    print(f"batch: {args.batch_size} x {args.max_length} tokens (packed: 1 row of that many)\n")
    print("| preset | packing | tokens/s | samples/s | padding | TFLOP/s | MFU |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        data = write_synthetic(Path(tmp) / "synthetic", args.rows)
        for preset in presets:
            for packing in modes:
                r = measure(args, preset, packing, data, Path(tmp) / "run")
                mfu = f"{r['MFU']:.1%}" if r["MFU"] is not None else "n/a"
                print(
                    f"| {r['preset']} | {r['packing']} | {r['tokens/s']:,.0f} | "
                    f"{r['samples/s']:.2f} | {r['padding']:.0%} | {r['TFLOP/s']:.3f} | {mfu} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
