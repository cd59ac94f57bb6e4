"""The local engine with a VLM, and what page images cost in prompt tokens.

1. A tiny random-init Idefics3 (the test's model folder) generating for 8 requests of two page
   images each (sample PDF pages at 150 dpi): batched (batch 8) vs one request at a time.
2. Image tokens per page: through the tiny model's processor, and through an Idefics3 processor
   with SmolVLM-Instruct's image settings (384-px tiles, longest edge 1536, 81 tokens a tile),
   for a Letter page at 150 dpi and at smaller `ingest.max_image_side` budgets. No download: the
   processor is built from its settings, with the bundled tokenizer.

Run: .venv/bin/python benchmarks/bench_vlm.py
"""

from __future__ import annotations

import argparse
import io
import platform
import tempfile
import time
from pathlib import Path

import pymupdf
from PIL import Image

from curation.generate import image_parts
from curation.generate.engines.base import ChatRequest
from curation.generate.engines.local import LocalEngine
from curation.train.config import RandomInitConfig
from curation.train.model import SMOLVLM_CHAT_TEMPLATE, random_init_model, random_init_processor

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "lighthouse_history.pdf"


def page_pngs(dpi: int) -> list[bytes]:
    with pymupdf.open(SAMPLE) as doc:
        return [doc[i].get_pixmap(dpi=dpi).tobytes("png") for i in range(min(2, len(doc)))]


def requests(pages: list[bytes], n: int) -> list[ChatRequest]:
    content = [*image_parts([0, 1], pages), {"type": "text", "text": "Ask one question."}]
    return [
        ChatRequest(f"r{i}", [{"role": "user", "content": content}], 16, 0.3, 0.9, seed=i)
        for i in range(n)
    ]


def timed(engine: LocalEngine, batch: list[ChatRequest], size: int) -> float:
    engine.batch_size = size
    start = time.perf_counter()
    engine.generate(batch)
    return time.perf_counter() - start


def image_tokens(processor, png: bytes) -> int:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x"}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    ids = processor(text=[text], images=[[image]], return_tensors="pt")["input_ids"][0]
    return int((ids == processor.image_token_id).sum())


def smolvlm_like_processor(longest_edge: int = 1536):
    """An Idefics3 processor with SmolVLM-Instruct's image settings (no download); its images
    are resized to `longest_edge` (SmolVLM's default 4 x 384) before tiling."""
    import transformers

    tiny = random_init_processor(RandomInitConfig())
    image_processor = transformers.Idefics3ImageProcessorPil(
        size={"longest_edge": longest_edge}, max_image_size={"longest_edge": 384}
    )
    return transformers.Idefics3Processor(
        image_processor, tiny.tokenizer, image_seq_len=81, chat_template=SMOLVLM_CHAT_TEMPLATE
    )


def scaled(png: bytes, side: int) -> bytes:
    image = Image.open(io.BytesIO(png))
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=8)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, python {platform.python_version()}")
    pages = page_pngs(150)
    spec = RandomInitConfig()
    processor = random_init_processor(spec)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "tiny-vlm"
        random_init_model(spec, processor, seed=0).save_pretrained(folder)
        processor.save_pretrained(folder)
        engine = LocalEngine(str(folder), batch_size=args.requests)
        batch = requests(pages, args.requests)
        timed(engine, batch[:2], 2)  # warm-up
        one = timed(engine, batch, 1)
        many = timed(engine, batch, args.requests)
    print("| measure | result |\n|---|---|")
    print(f"| tiny VLM, {args.requests} requests x 2 page images, one at a time | {one:.2f} s |")
    print(f"| same, batch {args.requests} | {many:.2f} s ({one / many:.2f}x) |")
    size = Image.open(io.BytesIO(pages[0])).size
    print(
        f"| tiny VLM image tokens, one {size[0]}x{size[1]} page (150 dpi) | "
        f"{image_tokens(processor, pages[0])} |"
    )
    smol = smolvlm_like_processor()
    for side in (None, 1024, 768, 512):
        png = pages[0] if side is None else scaled(pages[0], side)
        label = "150 dpi, as rendered" if side is None else f"max_image_side {side}"
        print(
            f"| SmolVLM-like processor, image tokens, one page, {label} | "
            f"{image_tokens(smol, png)} |"
        )
    for edge in (1152, 768, 384):
        tokens = image_tokens(smolvlm_like_processor(edge), pages[0])
        print(f"| same, processor longest_edge {edge} (the model's budget) | {tokens} |")


if __name__ == "__main__":
    main()
