"""The dataset card: README.md with the Hub YAML header, the funnel, statistics and plots.

Everything is read from what the writer left in the output folder (manifest.json and the
Parquet shards, `curation.output.finished`): the numbers come from `curation.output.stats`,
the plots from `curation.output.plots`; this module writes the YAML header and the Markdown.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from datasets import DatasetInfo, Features, SplitDict, SplitInfo
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCardData

from curation.output.finished import DATA_GLOB, REPORT_DIR, data_files, read_manifest
from curation.output.plots import PLOTS, write_plots
from curation.output.stats import SampleScan, funnel_rows, scan_samples, stats_from
from curation.schema import SAMPLE_FEATURES

SITE_DIR = f"{REPORT_DIR}/site"  # the offline browser (`curation view`), when built
SITE_LINK = f"[{SITE_DIR}/index.html]({SITE_DIR}/index.html)"
CARD_NAME = "README.md"
MAX_SOURCE_ROWS = 50  # the card lists this many inputs; manifest.json has them all
# The files `write_card` writes (or removes: a plot with nothing to show), relative to the folder.
CARD_FILES = (CARD_NAME, f"{REPORT_DIR}/stats.json", *(f"{REPORT_DIR}/{p}.png" for p in PLOTS))


def size_category(rows: int) -> str:
    """The Hub's size_categories bucket for a row count."""
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
    ]
    return next((label for bound, label in bounds if rows < bound), "n>1B")


def card_metadata(out_dir: Path, manifest: dict, scan: SampleScan) -> dict:
    """The YAML header: the Hub config pointing at the shards, their features, license, tags."""
    shards = data_files(out_dir)
    # The features come from the shards themselves, so the card can never disagree with them
    # (a run that kept nothing has no shard: then the writer's contract).
    features = Features.from_arrow_schema(pq.read_schema(shards[0])) if shards else SAMPLE_FEATURES
    splits = SplitDict()
    splits.add(SplitInfo(name="train", num_bytes=scan.data_bytes, num_examples=scan.rows))
    info = DatasetInfo(
        features=features,
        splits=splits,
        download_size=scan.download_bytes,
        dataset_size=scan.data_bytes,
    )
    card_data = DatasetCardData()
    DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)
    recipe = manifest.get("recipe") or {}
    name = manifest.get("recipe_name") or Path(out_dir).name
    return {
        "pretty_name": name,
        "license": recipe.get("license") or "other",
        "language": ["en"],
        "task_categories": ["visual-question-answering", "image-text-to-text"],
        "size_categories": [size_category(scan.rows)],
        "tags": [
            "synthetic",
            "multi-image",
            "document-understanding",
            "docmatix-style",
            "curation",
        ],
        "configs": [
            {"config_name": "default", "data_files": [{"split": "train", "path": DATA_GLOB}]}
        ],
        "dataset_info": card_data.to_dict()["dataset_info"],
    }


def _table(header: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(text: str | None, limit: int = 300) -> str:
    text = (text or "").replace("\n", " ").replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _image(plots: dict, key: str, alt: str) -> str:
    return f"![{alt}]({plots[key]})" if plots.get(key) else ""


def _summary_row(label: str, entry: dict | None) -> tuple:
    if not entry:
        return (label, "-", "-", "-", "-", "-")
    s = entry["summary"]
    return (label, s["min"], s["mean"], s["median"], s["p90"], s["max"])


def ratings_section(stats: dict) -> str:
    """The per-axis judge ratings as a histogram table (pairs per rating 1-5), or nothing."""
    ratings = stats.get("ratings") or {}
    if not ratings:
        return ""
    levels = ("1", "2", "3", "4", "5")
    rows = [
        (axis, *(found["counts"].get(level, 0) for level in levels), found["summary"]["mean"])
        for axis, found in ratings.items()
    ]
    return (
        "Judge ratings per axis (pairs kept at each rating, 1-5; every pair's ratings are in "
        "`qa_meta.ratings`, so a stricter cut can be made later without asking the judge):\n\n"
        + _table(("axis", *levels, "mean"), rows)
    )


def mix_section(stats: dict) -> str:
    """How the kept pairs spread over question types, and the units over layouts, or nothing."""
    parts = []
    if stats.get("question_types"):
        parts.append(
            "Question types (pairs kept, `qa_meta.question_type`: the type the prompt asked for, "
            "or the one a filter retyped the pair to; rejects carry theirs in `rejects/`):\n\n"
            + _table(("question type", "pairs kept"), list(stats["question_types"].items()))
        )
    if stats.get("units_by_layout"):
        parts.append(
            "Unit layouts (units made, skipped ones included):\n\n"
            + _table(("layout", "units"), list(stats["units_by_layout"].items()))
        )
    return "\n\n".join(parts)


def site_section(site: dict | None) -> str:
    """The line pointing to the offline browser published beside the data (`site`: its
    overview, see curation.view), or nothing."""
    if not site:
        return ""
    samples = site.get("samples") or {}
    shown, whole = samples.get("total", 0), samples.get("truncated_from")
    part = f"the first {shown} of {whole} samples" if whole else f"all {shown} samples"
    return (
        f"Browse {part}, the rejects with their filter and reason, and the errors offline: "
        f"download `{SITE_DIR}/` and open {SITE_LINK} in a browser (it needs no server)."
    )


def card_body(
    manifest: dict, stats: dict, scan: SampleScan, plots: dict, site: dict | None = None
) -> str:
    """The Markdown sections below the YAML header."""
    name = stats["name"] or "dataset"
    recipe = manifest.get("recipe") or {}
    inputs = manifest.get("inputs", [])
    sections = [
        f"# {name}",
        (recipe.get("description") or "").strip(),
        f"Synthetic multi-page question-answer pairs over document page images, built by "
        f"`curation` from the recipe `{manifest.get('recipe_path') or name}` "
        f"(hash `{(stats['recipe_hash'] or '')[:12]}`). {stats['rows']} samples "
        f"({stats['pairs']} question-answer pairs over {stats['images']} page images) "
        f"in {stats['shards']} shard(s). Each row is one window of consecutive pages: "
        "`images` (the pages), `texts` (turns of `user` / `assistant` / `source`), and provenance "
        "(`doc_id`, `pages`, `page_meta`, `qa_meta` with prompt, model and filter scores).",
        "```python\nfrom datasets import load_dataset\n\n"
        'ds = load_dataset("<this repo or folder>", split="train")\n'
        'ds[0]["images"]  # list of PIL images\n```',
        site_section(site),
        "## Sources",
        f"{len(inputs)} input documents; by status: "
        + ", ".join(f"{status} {n}" for status, n in stats["inputs_by_status"].items())
        + ". `doc_id` is the start of the sha256 of the file's bytes.",
        _table(
            ("source", "doc_id", "status", "pages", "units", "pairs kept", "errors"),
            [
                (
                    _cell(r["path"], 120),
                    f"`{r.get('doc_id') or '-'}`",
                    r["status"],
                    r.get("pages", 0),
                    r.get("units", 0),
                    r.get("pairs_kept", 0),
                    _cell("; ".join(e["code"] for e in r.get("errors", [])), 80),
                )
                for r in inputs[:MAX_SOURCE_ROWS]
            ],
        ),
    ]
    if len(inputs) > MAX_SOURCE_ROWS:
        sections.append(f"... and {len(inputs) - MAX_SOURCE_ROWS} more in `manifest.json`.")
    sections += [
        "## Recipe",
        f"```yaml\n{yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True).strip()}\n```",
        "Package versions: "
        + ", ".join(f"{k} {v}" for k, v in (manifest.get("versions") or {}).items()),
        "## Prompts",
        _table(("prompt", "pairs kept"), list(stats["prompts"].items())),
        "Models: " + ", ".join(f"`{m}` ({n} pairs)" for m, n in stats["models"].items()),
        mix_section(stats),
        "## Filters and funnel",
        f"Filter chain `{stats['filter_chain'] or '-'}` (`{recipe.get('filters', '-')}`). "
        "A pair is kept when every filter passes; each rejected pair is in `rejects/` with the "
        "first failing filter and its reason, each failed input in `errors/` with a code. "
        "`parse` counts model replies that could not be read as pairs."
        + (
            " A unit whose pages all repeat earlier pages of the run (page dedup: the same text "
            "and a near-identical image) was skipped before generation; a kept page that repeats "
            "one names it in `page_meta.duplicate_of`."
            if "duplicate_pages" in stats["funnel"]["units_skipped"]
            or stats["funnel"]["pages_duplicate"]
            else ""
        )
        + (
            " A unit none of whose pages holds text (blank pages, or pages OCR found no text "
            "on) was skipped before generation: the model reads text only."
            if "no_text" in stats["funnel"]["units_skipped"]
            else ""
        ),
        _table(("stage", "count"), funnel_rows(stats)),
        _image(plots, "funnel", "funnel"),
        "## Statistics",
        _table(
            ("per", "min", "mean", "median", "p90", "max"),
            [
                _summary_row("pairs per unit", stats["pairs_per_unit"]),
                _summary_row("pages per unit", stats["pages_per_unit"]),
                _summary_row("answer length (chars)", stats["answer_chars"]),
                _summary_row("question length (chars)", stats["question_chars"]),
                _summary_row("judge score", stats["judge_scores"]),
            ],
        ),
        _image(plots, "pairs_per_unit", "pairs per unit"),
        _image(plots, "pages_per_unit", "pages per unit"),
        _image(plots, "answer_length", "answer length"),
        _image(plots, "judge_scores", "judge scores")
        or "_No judge scores: no filter of this chain (type `judge`) scored the pairs._",
        ratings_section(stats),
        "Full numbers: [report/stats.json](report/stats.json).",
        "## Examples",
    ]
    for example in scan.examples:
        n = example["images"]
        sections.append(f"**`{example['id']}`** ({n} image{'' if n == 1 else 's'})")
        sections.append(
            _table(
                ("question", "answer"),
                [(_cell(t["user"]), _cell(t["assistant"])) for t in example["texts"][:3]],
            )
        )
    return "\n\n".join(section for section in sections if section) + "\n"


def write_card(out_dir: Path, site: dict | None = None, dest: Path | None = None) -> Path:
    """Write README.md (dataset card), report/stats.json and report/*.png (CARD_FILES) into
    `dest` (default: the output folder itself); returns the card path. With `site` (the overview
    of a site built into report/site/) the card links it."""
    out_dir = Path(out_dir)
    dest = out_dir if dest is None else Path(dest)
    manifest = read_manifest(out_dir)
    scan = scan_samples(out_dir)
    stats = stats_from(manifest, scan)
    metadata = card_metadata(out_dir, manifest, scan)
    report = dest / REPORT_DIR
    plots = write_plots(report, stats, scan)
    (report / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    header = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)
    card = dest / CARD_NAME
    partial = card.with_suffix(".md.partial")
    partial.write_text(f"---\n{header}---\n\n{card_body(manifest, stats, scan, plots, site)}")
    partial.replace(card)
    return card
