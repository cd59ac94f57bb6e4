"""Export a finished dataset to the training formats of Mantis, InternVL and LLaVA.

Each format gets the page images as files under `images/` and an annotation file whose
conversations carry one `<image>` token per image, all in the first user turn. Rows are
streamed from the shards batch by batch, so an export never holds the dataset in memory.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pyarrow.parquet as pq

from curation.outdir import OutputFolder
from curation.output.finished import OutputFolderError, data_files, read_manifest

FORMATS = ("mantis", "internvl", "llava")
IMAGE_TOKEN = "<image>"
IMAGES_DIR = "images"
BATCH_ROWS = 64


def image_prefix(fmt: str, n_images: int) -> str:
    """The image tokens that open the first user turn.

    InternVL numbers the images of a multi-image sample ("Image-1: <image>"), as its chat
    template and fine-tuning data do; the others put one bare token per image.
    """
    if fmt == "internvl" and n_images > 1:
        return "".join(f"Image-{i}: {IMAGE_TOKEN}\n" for i in range(1, n_images + 1))
    return f"{IMAGE_TOKEN}\n" * n_images


def turns(fmt: str, texts: list[dict], n_images: int) -> list[tuple[str, str]]:
    """(user, assistant) turns, the image tokens prepended to the first question."""
    prefix = image_prefix(fmt, n_images)
    return [((prefix if i == 0 else "") + t["user"], t["assistant"]) for i, t in enumerate(texts)]


def mantis_record(row_id: str, images: list[str], texts: list[dict]) -> dict:
    """Mantis-Instruct layout: `images` and a `conversation` of role/content messages."""
    conversation = []
    for user, assistant in turns("mantis", texts, len(images)):
        conversation += [
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ]
    return {"id": row_id, "images": images, "conversation": conversation}


def sharegpt_record(fmt: str, row_id: str, images: list[str], texts: list[dict]) -> dict:
    """LLaVA / InternVL layout: `image` (a list for several images) and human/gpt turns."""
    conversations = []
    for user, assistant in turns(fmt, texts, len(images)):
        conversations += [{"from": "human", "value": user}, {"from": "gpt", "value": assistant}]
    return {"id": row_id, "image": images, "conversations": conversations}


def export_record(fmt: str, row_id: str, images: list[str], texts: list[dict]) -> dict:
    """One sample in the layout of `fmt`."""
    if fmt == "mantis":
        return mantis_record(row_id, images, texts)
    return sharegpt_record(fmt, row_id, images, texts)


@dataclass
class ExportResult:
    """What an export wrote."""

    format: str
    out: Path
    rows: int = 0
    images: int = 0
    files: list[Path] = field(default_factory=list)  # annotation and meta files


class ImageFiles:
    """Writes each page image once under images/, returning paths relative to the export folder."""

    def __init__(self, dest: Path) -> None:
        self.folder = dest / IMAGES_DIR
        self.folder.mkdir(parents=True, exist_ok=True)
        self.written: set[str] = set()

    def add(self, image: dict) -> str:
        data = image["bytes"]
        # The writer names images `<doc_id>-p<page>.<ext>`; only the last component is used.
        name = Path(image.get("path") or "").name
        if not name:
            name = hashlib.sha256(data).hexdigest()[:16] + ".png"
        if name not in self.written:
            (self.folder / name).write_bytes(data)
            self.written.add(name)
        return f"{IMAGES_DIR}/{name}"


class JsonArrayFile:
    """A JSON array written one element at a time (LLaVA's single-file annotation)."""

    def __init__(self, path: Path) -> None:
        self.handle: IO[str] = path.open("w", encoding="utf-8")
        self.handle.write("[")
        self.count = 0

    def write(self, record: dict) -> None:
        self.handle.write(",\n" if self.count else "\n")
        self.handle.write(json.dumps(record, ensure_ascii=False))
        self.count += 1

    def close(self) -> None:
        self.handle.write("\n]\n")
        self.handle.close()


class JsonLinesFile:
    """One JSON object per line (Mantis and InternVL annotations)."""

    def __init__(self, path: Path) -> None:
        self.handle: IO[str] = path.open("w", encoding="utf-8")

    def write(self, record: dict) -> None:
        self.handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self.handle.close()


def annotation_path(fmt: str, dest: Path, name: str) -> Path:
    return {
        "mantis": dest / "train.jsonl",
        "internvl": dest / f"{name}.jsonl",
        "llava": dest / "train.json",
    }[fmt]


def export_dataset(out_dir: Path, fmt: str, dest: Path) -> ExportResult:
    """Write the samples of `out_dir` to `dest` in one of FORMATS; images become files. `dest`
    is claimed and locked first (`curation.outdir`)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out_dir, dest = Path(out_dir), Path(dest)
    manifest = read_manifest(out_dir)
    if dest.resolve() == out_dir.resolve():
        raise OutputFolderError(f"{dest}: export into another folder than the dataset itself")
    with OutputFolder(dest, "export"):
        name = manifest.get("recipe_name") or out_dir.name
        images = ImageFiles(dest)
        annotation = annotation_path(fmt, dest, name)
        sink = JsonArrayFile(annotation) if fmt == "llava" else JsonLinesFile(annotation)
        result = ExportResult(format=fmt, out=dest, files=[annotation])
        try:
            for path in data_files(out_dir):
                shard = pq.ParquetFile(path)
                for batch in shard.iter_batches(
                    batch_size=BATCH_ROWS, columns=["id", "images", "texts"]
                ):
                    for row in batch.to_pylist():
                        paths = [images.add(image) for image in row["images"]]
                        sink.write(export_record(fmt, row["id"], paths, row["texts"]))
                        result.rows += 1
        finally:
            sink.close()
        result.images = len(images.written)
        if fmt == "internvl":
            meta = dest / "meta.json"
            # InternVL joins `root` with each image path and reads `annotation` from its own
            # working directory, so both are absolute.
            entry = {
                "root": str(dest.resolve()),
                "annotation": str(annotation.resolve()),
                "data_augment": False,
                "repeat_time": 1,
                "length": result.rows,
                "max_dynamic_patch": 6,
            }
            meta.write_text(json.dumps({name: entry}, indent=2) + "\n")
            result.files.append(meta)
    return result
