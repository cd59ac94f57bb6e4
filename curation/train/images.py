"""Per-sample image budget (Leopard / InternVL): a tile budget split across a sample's images in
proportion to their area, applied through what each processor family supports."""

from __future__ import annotations

import io
import math
from typing import Any

from PIL import Image

from curation.config import ConfigError
from curation.train.config import ImagesConfig

IDEFICS3_TYPES = ("idefics3", "smolvlm")
QWEN2VL_TYPES = ("qwen2_vl", "qwen2_5_vl")
QWEN_TILE = 448  # InternVL's tile side; Qwen2-VL has no tiles, so a tile is this many pixels


def decode_image(data: bytes | None, max_pixels: int = 40_000_000) -> Image.Image:
    """An RGB image from encoded bytes; refuses decompression bombs."""
    if not data:
        raise ValueError("image has no bytes")
    image = Image.open(io.BytesIO(data))
    if image.width * image.height > max_pixels:
        raise ValueError(f"image too large: {image.width}x{image.height}")
    return image.convert("RGB")


def split_budget(areas: list[int], budget: int, cap: int) -> list[int]:
    """Tiles per image: the budget in proportion to area, at least 1 and at most `cap` each."""
    total = sum(areas) or 1
    return [min(cap, max(1, math.floor(budget * area / total))) for area in areas]


class Idefics3Images:
    """Idefics3 / SmolVLM: an image resized to longest side `k x tile` splits into a grid of
    tiles plus a thumbnail; k is the largest that keeps the image within its share of tiles."""

    packing = True

    def __init__(self, processor: Any, config: ImagesConfig) -> None:
        self.processor = processor
        self.image_processor = processor.image_processor
        self.tile = self.image_processor.max_image_size["longest_edge"]
        if config.tile_size is not None and config.tile_size != self.tile:
            raise ConfigError(
                f"data.images.tile_size: Idefics3 tiles are fixed by the vision encoder "
                f"({self.tile} px); leave it unset"
            )
        self.max_side = max(self.tile, self.image_processor.size["longest_edge"])
        self.splitting = config.do_image_splitting
        self.budget = config.max_tiles
        widest = self.tiles_at(self.max_side, self.max_side, self.max_side)
        self.cap = min(config.max_tiles_per_image or widest, widest)

    def _kwargs(self, side: int) -> dict:
        return {
            "size": {"longest_edge": side},
            "max_image_size": {"longest_edge": self.tile},
            "do_image_splitting": self.splitting,
        }

    def tiles_at(self, width: int, height: int, side: int) -> int:
        patches, _, _ = self.image_processor.get_number_of_image_patches(
            height, width, self._kwargs(side)
        )
        return max(patches, 1)

    def plan(self, sizes: list[tuple[int, int]]) -> list[dict]:
        """Processor keyword arguments for each image, within the sample's tile budget."""
        shares = split_budget([w * h for w, h in sizes], self.budget, self.cap)
        plans = []
        for (width, height), share in zip(sizes, shares, strict=True):
            # Never more tiles than the image's own resolution fills.
            steps = max(
                1, min(math.ceil(max(width, height) / self.tile), self.max_side // self.tile)
            )
            side = self.tile
            for k in range(steps, 0, -1):
                if self.tiles_at(width, height, k * self.tile) <= share:
                    side = k * self.tile
                    break
            plans.append(self._kwargs(side))
        return plans

    def encode(self, text: str, image: Image.Image, kwargs: dict) -> tuple[list[int], dict, int]:
        """Token ids of `text` (one image token, expanded) and the image's tiles."""
        out = self.processor(
            text=[text], images=[[image]], return_tensors="pt", add_special_tokens=False, **kwargs
        )
        pixels = {
            "pixel_values": out["pixel_values"][0],
            "pixel_attention_mask": out["pixel_attention_mask"][0],
        }
        return out["input_ids"][0].tolist(), pixels, out["pixel_values"].shape[1]

    @staticmethod
    def batch(rows: list[list[dict]]) -> dict:
        """(batch, tiles, 3, T, T) with all-zero padding tiles, which the model skips."""
        import torch

        first = next(p for row in rows for p in row)
        most = max(sum(p["pixel_values"].shape[0] for p in row) for row in rows)
        values = torch.zeros(len(rows), most, *first["pixel_values"].shape[1:])
        masks = torch.zeros(
            len(rows), most, *first["pixel_attention_mask"].shape[1:], dtype=torch.long
        )
        for index, row in enumerate(rows):
            at = 0
            for part in row:
                n = part["pixel_values"].shape[0]
                values[index, at : at + n] = part["pixel_values"]
                masks[index, at : at + n] = part["pixel_attention_mask"]
                at += n
        return {"pixel_values": values, "pixel_attention_mask": masks}


class Qwen2VLImages:
    """Qwen2-VL / Qwen2.5-VL: no tiles but a pixel cap per image, here share x tile_size^2."""

    packing = False  # its 3-D rotary positions are computed per sequence by the model

    def __init__(self, processor: Any, config: ImagesConfig) -> None:
        self.processor = processor
        self.tile = config.tile_size or QWEN_TILE
        self.budget = config.max_tiles
        self.cap = config.max_tiles_per_image or self.budget
        self.min_pixels = processor.image_processor.size["shortest_edge"]

    def plan(self, sizes: list[tuple[int, int]]) -> list[dict]:
        shares = split_budget([w * h for w, h in sizes], self.budget, self.cap)
        plans = []
        for share in shares:
            most = share * self.tile**2
            plans.append(
                {"size": {"shortest_edge": min(self.min_pixels, most), "longest_edge": most}}
            )
        return plans

    def encode(self, text: str, image: Image.Image, kwargs: dict) -> tuple[list[int], dict, int]:
        out = self.processor(
            text=[text], images=[image], return_tensors="pt", add_special_tokens=False, **kwargs
        )
        pixels = {"pixel_values": out["pixel_values"], "image_grid_thw": out["image_grid_thw"]}
        patches = int(out["image_grid_thw"].prod())
        patch = self.processor.image_processor.patch_size
        return (
            out["input_ids"][0].tolist(),
            pixels,
            max(1, round(patches * patch**2 / self.tile**2)),
        )

    @staticmethod
    def batch(rows: list[list[dict]]) -> dict:
        import torch

        flat = [p for row in rows for p in row]
        return {
            "pixel_values": torch.cat([p["pixel_values"] for p in flat]),
            "image_grid_thw": torch.cat([p["image_grid_thw"] for p in flat]),
        }


def image_family(model_type: str, processor: Any, config: ImagesConfig):
    """The image handling for a model type; other families are refused with the supported list."""
    if model_type in IDEFICS3_TYPES:
        return Idefics3Images(processor, config)
    if model_type in QWEN2VL_TYPES:
        return Qwen2VLImages(processor, config)
    raise ConfigError(
        f"model: type '{model_type}' is not supported for training; "
        f"supported: {', '.join(IDEFICS3_TYPES + QWEN2VL_TYPES)}"
    )
