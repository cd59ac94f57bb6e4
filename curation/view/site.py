"""Build the static site of `curation view`: an offline browser of an output folder.

The site is a folder that opens from file:// (no server): besides the app (index.html, its
classic scripts and style.css, shipped in curation/view/static/), every piece of data is a script,
`CURATION.add(name, JSON);`, loaded by a <script> tag, since browsers refuse fetch() there. The
JSON is ASCII and every "<" in it is written \\u003c, so no text of the data (a page, an answer,
a raw reply) can close the script tag. The output folder is read batch by batch and never
written; the site goes to a temporary folder beside its destination and is renamed into place.
A destination is replaced only when it is missing, empty, or a site this tool wrote (marked by
`.curation-site`).
"""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from curation.outdir import TOOL, FolderRefused, read_json
from curation.output.finished import REPORT_DIR
from curation.output.plots import PLOTS
from curation.output.shards import image_name
from curation.view.compare import compare_sources
from curation.view.sources import Source, open_source

SITE_MARKER = ".curation-site"
CHUNK = 100  # samples (or rejects) per data file
THUMB_PX = 320  # a thumbnail's longest side
STATIC = Path(__file__).parent / "static"
IMAGE_GROUP = 32  # samples whose page images are written together (held in memory at once)
DATA, IMG, PLOTS_DIR = "data", "img", "plots"


def _finite(value: object) -> object:
    """`value` with NaN and infinities as None (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def js_data(name: str, value: object) -> str:
    """A data file's text: `CURATION.add(name, JSON);` with ASCII JSON and "<" as \\u003c."""
    try:
        text = json.dumps(value, ensure_ascii=True, allow_nan=False)
    except ValueError:  # a NaN somewhere (a score): written as null
        text = json.dumps(_finite(value), ensure_ascii=True, allow_nan=False)
    text = text.replace("<", "\\u003c")
    return f"CURATION.add({json.dumps(name)}, {text});\n"


def write_js(site: Path, name: str, value: object) -> None:
    (site / DATA / f"{name}.js").write_text(js_data(name, value), encoding="ascii")


class ChunkWriter:
    """Items written as data/<prefix>-NNNNN.js, CHUNK to a file."""

    def __init__(self, site: Path, prefix: str) -> None:
        self.site, self.prefix = site, prefix
        self.items: list[dict] = []
        self.chunks = 0
        self.total = 0

    def add(self, item: dict) -> None:
        self.items.append(item)
        self.total += 1
        if len(self.items) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.items:
            write_js(self.site, f"{self.prefix}-{self.chunks:05d}", self.items)
            self.chunks += 1
            self.items = []

    def close(self) -> dict:
        self.flush()
        return {"total": self.total, "chunk": CHUNK, "chunks": self.chunks}


def safe_name(text: str) -> str:
    """A file name made of letters, digits, '.', '_' and '-' only, never starting with '.'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text or "").lstrip(".") or "_"


def thumbnail(data: bytes) -> bytes | None:
    """A JPEG of the image with its longest side at most THUMB_PX; None if it cannot be read."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (THUMB_PX, THUMB_PX))  # JPEG: decode at a reduced size
            image.thumbnail((THUMB_PX, THUMB_PX))
            out = io.BytesIO()
            image.convert("RGB").save(out, format="JPEG", quality=80)
            return out.getvalue()
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def row_images(row: dict) -> list[tuple[int, str | None, bytes | None]]:
    """(page, file name, bytes) of a Sample row's images; no name for an image without bytes.
    Named by document and page (windows share pages), or by the row for a row of no document (a
    Docmatix row that `curation filter` kept)."""
    pages = row.get("pages") or []
    owner = safe_name(row.get("doc_id") or row.get("id") or "doc")
    found = []
    for index, image in enumerate(row.get("images") or []):
        page = pages[index] if index < len(pages) else index
        data = (image or {}).get("bytes")
        name = image_name(owner, page, data) if data else None
        found.append((page, name, data))
    return found


def thumb_name(full: str) -> str:
    return f"{full.rsplit('.', 1)[0]}-thumb.jpg"


class ImageWriter:
    """Page images (as stored) and their thumbnails under img/, each page once (overlapping
    windows share pages), several at a time: decoding and encoding release the GIL."""

    def __init__(self, img_dir: Path, pool: ThreadPoolExecutor) -> None:
        self.img_dir, self.pool = img_dir, pool
        self.thumbs: dict[str, bool] = {}  # file name -> whether it has a thumbnail

    def _write(self, item: tuple[str, bytes]) -> bool:
        name, data = item
        (self.img_dir / name).write_bytes(data)
        small = thumbnail(data)
        if small is not None:
            (self.img_dir / thumb_name(name)).write_bytes(small)
        return small is not None

    def write(self, rows: list[dict]) -> list[list[dict]]:
        """Write the images of these rows not written yet; each row's image entries."""
        found = [row_images(row) for row in rows]
        todo = {name: data for images in found for _, name, data in images if name}
        todo = {name: data for name, data in todo.items() if name not in self.thumbs}
        self.thumbs.update(zip(todo, self.pool.map(self._write, todo.items()), strict=True))
        return [
            [
                {
                    "page": page,
                    "thumb": f"{IMG}/{thumb_name(name)}" if name and self.thumbs[name] else None,
                    "full": f"{IMG}/{name}" if name else None,
                }
                for page, name, _ in images
            ]
            for images in found
        ]


def site_pair(text: dict, meta: dict) -> dict:
    return {
        "qa_id": meta.get("qa_id"),
        "question": text.get("user"),
        "answer": text.get("assistant"),
        "prompt_id": meta.get("prompt_id"),
        "model": meta.get("model"),
        "question_type": meta.get("question_type"),
        "rationale": meta.get("rationale"),
        "evidence_pages": meta.get("evidence_pages") or [],
        "ratings": meta.get("ratings") or [],
        "rating_min": meta.get("rating_min"),
        "scores": meta.get("scores") or [],
    }


def site_sample(row: dict, images: list[dict]) -> dict:
    """A sample as the browser shows it, from a Sample row (the shard layout)."""
    texts = row.get("texts") or []
    return {
        "id": row["id"],
        "doc_id": row.get("doc_id"),
        "source": (texts[0].get("source") or "") if texts else "",
        "pages": row.get("pages") or [],
        "images": images,
        "page_meta": [
            {
                "page": meta.get("page"),
                "text_source": meta.get("text_source"),
                "ocr_score": meta.get("ocr_score"),
                "duplicate_of": meta.get("duplicate_of"),
            }
            for meta in row.get("page_meta") or []
        ],
        "pairs": [
            site_pair(text, meta)
            for text, meta in zip(texts, row.get("qa_meta") or [], strict=False)
        ],
    }


def site_reject(row: dict, sample_ids: set[str]) -> dict:
    """A reject as the browser shows it; `sample` is its unit's kept sample in the site, if any."""
    keys = ("unit_id", "doc_id", "source", "pages", "qa_id", "prompt_id", "question_type")
    shown = {key: row.get(key) for key in keys}
    for key in ("question", "answer", "filter", "reason", "score", "raw_reply"):
        shown[key] = row.get(key)
    shown["sample"] = row.get("unit_id") if row.get("unit_id") in sample_ids else None
    return shown


@dataclass
class Tally:
    """What the overview counts over every kept pair (not only those the site holds)."""

    samples: int = 0
    prompts: Counter = field(default_factory=Counter)
    question_types: Counter = field(default_factory=Counter)
    documents: set[str] = field(default_factory=set)
    rating_sum: Counter = field(default_factory=Counter)
    rating_n: Counter = field(default_factory=Counter)

    def add(self, row: dict) -> None:
        self.samples += 1
        if row.get("doc_id"):
            self.documents.add(row["doc_id"])
        for meta in row.get("qa_meta") or []:
            self.prompts[meta.get("prompt_id") or "-"] += 1
            if meta.get("question_type"):
                self.question_types[meta["question_type"]] += 1
            for rating in meta.get("ratings") or []:
                if rating.get("score") is not None:
                    self.rating_sum[rating["axis"]] += rating["score"]
                    self.rating_n[rating["axis"]] += 1

    def ratings(self) -> list[list]:
        means = {axis: round(self.rating_sum[axis] / n, 2) for axis, n in self.rating_n.items()}
        return [[axis, means[axis]] for axis in sorted(means)]


def write_samples(source: Source, site: Path, limit: int | None) -> tuple[dict, set[str]]:
    """The first `limit` samples (all with None) as data chunks and images; their ids."""
    chunks, ids = ChunkWriter(site, "samples"), set()
    (site / IMG).mkdir(exist_ok=True)
    rows = source.samples() if limit != 0 else iter(())
    if limit is not None:
        rows = itertools.islice(rows, limit)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        images = ImageWriter(site / IMG, pool)
        while group := list(itertools.islice(rows, IMAGE_GROUP)):
            for row, shown in zip(group, images.write(group), strict=True):
                chunks.add(site_sample(row, shown))
                ids.add(row["id"])
    return chunks.close(), ids


def write_rejects(
    source: Source, site: Path, sample_ids: set[str], limit: int | None
) -> tuple[dict, Counter]:
    """The first `limit` rejects as data chunks; every reject counted by filter."""
    chunks, by_filter, seen = ChunkWriter(site, "rejects"), Counter(), 0
    for row in source.rejects():
        seen += 1
        by_filter[row.get("filter") or "-"] += 1
        if limit is None or chunks.total < limit:
            chunks.add(site_reject(row, sample_ids))
    info = chunks.close()
    if seen > info["total"]:
        info["truncated_from"] = seen
    return info, by_filter


def write_errors(source: Source, site: Path) -> tuple[dict, Counter]:
    errors = [
        {key: row.get(key) for key in ("doc_id", "source", "stage", "code", "message")}
        for row in source.errors()
    ]
    write_js(site, "errors", errors)
    return {"total": len(errors)}, Counter(error["code"] for error in errors)


def copy_plots(out_dir: Path, site: Path) -> list[list[str]]:
    """The card's plots (report/*.png), when the folder has them, copied under plots/."""
    shown = []
    for name in PLOTS:
        found = out_dir / REPORT_DIR / f"{name}.png"
        if found.is_file():
            (site / PLOTS_DIR).mkdir(exist_ok=True)
            shutil.copyfile(found, site / PLOTS_DIR / found.name)
            shown.append([name.replace("_", " "), f"{PLOTS_DIR}/{found.name}"])
    return shown


def ranked(counts: Counter) -> list[list]:
    """[label, count] rows, most first (then by label)."""
    return [[label, n] for label, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))]


def overview_counts(source: Source, tally: Tally, rejects: Counter, errors: Counter) -> dict:
    """The overview's tables; a table with nothing to count is left out."""
    counts = {
        **source.base_counts(),
        "pairs_by_prompt": tally.prompts,
        "pairs_by_question_type": tally.question_types,
        "rejects_by_filter": rejects,
        "errors_by_code": errors,
    }
    shown = {key: ranked(Counter(found)) for key, found in counts.items() if found}
    if tally.rating_n:
        shown["ratings_by_axis"] = tally.ratings()
    return shown


def write_site(
    source: Source, site: Path, compare: Source | None = None, max_samples: int | None = None
) -> dict:
    """Write the data files, images and plots of `source` into the folder `site`; the overview."""
    (site / DATA).mkdir(parents=True, exist_ok=True)
    tally = Tally()
    for row in source.sample_meta():
        tally.add(row)
    samples, ids = write_samples(source, site, max_samples)
    if tally.samples > samples["total"]:
        samples["truncated_from"] = tally.samples
    rejects, by_filter = write_rejects(source, site, ids, max_samples)
    errors, by_code = write_errors(source, site)
    overview = {
        "name": source.name,
        "out_dir": str(source.out_dir),
        "status": source.status,
        "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "funnel": [[label, n] for label, n in source.funnel()],
        "counts": overview_counts(source, tally, by_filter, by_code),
        "plots": copy_plots(source.out_dir, site),
        "samples": samples,
        "rejects": rejects,
        "errors": errors,
        "facets": {
            "documents": sorted(tally.documents),
            "prompts": sorted(tally.prompts),
            "question_types": sorted(tally.question_types),
        },
        "compare": None,
    }
    if compare is not None:
        found = compare_sources(source, compare)
        write_js(site, "compare", found)
        overview["compare"] = {"other": found["other"], **found["counts"]}
    write_js(site, "overview", overview)
    return overview


def is_site(folder: Path) -> bool:
    """Whether `folder` holds a site this tool wrote (its marker file)."""
    return (read_json(folder / SITE_MARKER) or {}).get("tool") == TOOL


def check_dest(dest: Path) -> None:
    """Raise FolderRefused unless `dest` is missing, an empty folder, or a site of ours."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise FolderRefused(
            f"{dest}: not a folder; `curation view` writes its site into a new folder or one "
            f"it wrote before (marked by {SITE_MARKER})"
        )
    if dest.is_dir() and any(dest.iterdir()) and not is_site(dest):
        raise FolderRefused(
            f"{dest}: holds files `curation view` did not write (no {SITE_MARKER}); it "
            "replaces only a site it wrote: choose another folder, or move this one away"
        )


def replace_dest(built: Path, dest: Path) -> None:
    """Put the finished site `built` at `dest`, replacing the site there (checked again)."""
    check_dest(dest)
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old."))
        dest.rename(old / "site")
    built.rename(dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_site(
    out_dir: Path, dest: Path, compare: Path | None = None, max_samples: int | None = None
) -> dict:
    """Build the site of the output folder `out_dir` (finished or running) at `dest`; with
    `compare`, the pairs whose fate differs in that other folder; at most `max_samples`
    samples and as many rejects. Returns the overview (data/overview.js)."""
    out_dir, dest = Path(out_dir), Path(dest)
    source = open_source(out_dir)
    other = open_source(Path(compare)) if compare is not None else None
    check_dest(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.build."))
    try:
        site = work / "site"
        if STATIC.is_dir():
            ignore = shutil.ignore_patterns(".*", "__pycache__", "*.py", "*.pyc")
            shutil.copytree(STATIC, site, symlinks=True, ignore=ignore)
        site.mkdir(exist_ok=True)
        overview = write_site(source, site, other, max_samples)
        marker = {
            "tool": TOOL,
            "command": "view",
            "source": str(out_dir),
            "built": overview["built"],
        }
        (site / SITE_MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        replace_dest(site, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return overview
