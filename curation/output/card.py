"""The dataset card: README.md with the Hub YAML header, the funnel, statistics and plots.

Everything is read from what the writer left in the output folder (manifest.json and the
Parquet shards), reading only the columns a statistic needs: images are never decoded.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from datasets import DatasetInfo, Features, SplitDict, SplitInfo
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCardData

from curation.schema import SAMPLE_FEATURES

DATA_GLOB = "data/train-*.parquet"
REPORT_DIR = "report"
SITE_DIR = f"{REPORT_DIR}/site"  # the offline browser (`curation view`), when built
SITE_LINK = f"[{SITE_DIR}/index.html]({SITE_DIR}/index.html)"
CARD_NAME = "README.md"
SCAN_BATCH_ROWS = 1024
EXAMPLE_ROWS = 3
MAX_SOURCE_ROWS = 50  # the card lists this many inputs; manifest.json has them all
PLOTS = ("funnel", "pairs_per_unit", "answer_length", "judge_scores", "pages_per_unit")
# The files `write_card` writes (or removes: a plot with nothing to show), relative to the folder.
CARD_FILES = (CARD_NAME, f"{REPORT_DIR}/stats.json", *(f"{REPORT_DIR}/{p}.png" for p in PLOTS))
# The funnel's stages: manifest `counts` key and label.
FUNNEL_STAGES = (
    ("documents", "documents"),
    ("pages", "pages"),
    ("units", "units"),
    ("units_with_samples", "units with samples"),
    ("pairs_generated", "pairs generated"),
    ("pairs_kept", "pairs kept"),
    ("pairs_rejected", "pairs rejected"),
)


# Why a unit got no LLM call (RunCounts.units_skipped keys), as the funnel says it.
SKIP_LABELS = {
    "duplicate_pages": "every page repeats an earlier one",
    "no_text": "no page holds text",
}


class OutputFolderError(ValueError):
    """A folder that is not a finished output folder (no manifest.json, missing shards)."""


def read_manifest(out_dir: Path) -> dict:
    """The manifest of a finished run; OutputFolderError when the folder has none."""
    path = Path(out_dir) / "manifest.json"
    if not path.is_file():
        raise OutputFolderError(
            f"{out_dir}: no manifest.json here; expected the output folder of a finished "
            "`curation run` (e.g. out/<recipe>)"
        )
    return json.loads(path.read_text())


def data_files(out_dir: Path) -> list[Path]:
    """The sample shards in order."""
    return sorted(Path(out_dir).glob(DATA_GLOB))


class Distribution:
    """Value counts of a numeric quantity, accumulated batch by batch in bounded memory."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()

    def add(self, values: pa.Array | np.ndarray) -> None:
        array = values.to_numpy(zero_copy_only=False) if isinstance(values, pa.Array) else values
        array = array[~np.isnan(array)] if array.dtype.kind == "f" else array
        uniques, counts = np.unique(array, return_counts=True)
        self.counts.update(dict(zip(uniques.tolist(), counts.tolist(), strict=True)))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        values = np.array(sorted(self.counts), dtype=float)
        return values, np.array([self.counts[v] for v in sorted(self.counts)], dtype=float)

    def summary(self) -> dict | None:
        """count, min, mean, median, p90 and max; None when empty."""
        if not self.counts:
            return None
        values, counts = self.arrays()
        cumulative = np.cumsum(counts)

        def quantile(q: float) -> float:
            return float(values[np.searchsorted(cumulative, q * cumulative[-1])])

        return {
            "count": int(cumulative[-1]),
            "min": float(values[0]),
            "mean": round(float((values * counts).sum() / cumulative[-1]), 2),
            "median": quantile(0.5),
            "p90": quantile(0.9),
            "max": float(values[-1]),
        }

    def as_dict(self, with_counts: bool) -> dict | None:
        if not self.counts:
            return None
        out: dict = {"summary": self.summary()}
        if with_counts:
            out["counts"] = {_number_key(v): n for v, n in sorted(self.counts.items())}
        return out


def _number_key(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass
class SampleScan:
    """What the sample shards hold, gathered in one pass over the needed columns."""

    shards: int = 0
    rows: int = 0
    data_bytes: int = 0  # uncompressed, from the Parquet metadata
    download_bytes: int = 0  # on disk
    pairs_per_unit: Distribution = field(default_factory=Distribution)
    pages_per_unit: Distribution = field(default_factory=Distribution)
    answer_chars: Distribution = field(default_factory=Distribution)
    question_chars: Distribution = field(default_factory=Distribution)
    judge_scores: Distribution = field(default_factory=Distribution)
    ratings: dict[str, Distribution] = field(default_factory=dict)  # per judge axis
    prompts: Counter = field(default_factory=Counter)
    question_types: Counter = field(default_factory=Counter)  # kept pairs by qa_meta.question_type
    models: Counter = field(default_factory=Counter)
    examples: list[dict] = field(default_factory=list)


def _value_counts(array: pa.Array) -> dict:
    return {row["values"]: row["counts"] for row in pc.value_counts(array).to_pylist()}


def scan_samples(out_dir: Path) -> SampleScan:
    """Read texts, pages and qa_meta (never images) from every shard, batch by batch."""
    scan = SampleScan()
    for path in data_files(out_dir):
        shard = pq.ParquetFile(path)
        scan.shards += 1
        scan.rows += shard.metadata.num_rows
        scan.download_bytes += path.stat().st_size
        scan.data_bytes += sum(
            shard.metadata.row_group(i).total_byte_size for i in range(shard.num_row_groups)
        )
        for batch in shard.iter_batches(
            batch_size=SCAN_BATCH_ROWS, columns=["id", "pages", "texts", "qa_meta"]
        ):
            texts, qa_meta = batch.column("texts"), batch.column("qa_meta")
            scan.pairs_per_unit.add(pc.list_value_length(texts))
            scan.pages_per_unit.add(pc.list_value_length(batch.column("pages")))
            pairs = pc.list_flatten(texts)
            scan.answer_chars.add(pc.utf8_length(pc.struct_field(pairs, "assistant")).fill_null(0))
            scan.question_chars.add(pc.utf8_length(pc.struct_field(pairs, "user")).fill_null(0))
            meta = pc.list_flatten(qa_meta)
            scan.prompts.update(_value_counts(pc.struct_field(meta, "prompt_id")))
            scan.models.update(_value_counts(pc.struct_field(meta, "model")))
            scores = pc.list_flatten(pc.struct_field(meta, "scores"))
            if len(scores):
                # The judge's decisions carry its label: the type `judge`, or a name with "judge".
                names = pc.struct_field(scores, "filter")
                judged = pc.match_substring(names, "judge", ignore_case=True).fill_null(False)
                scan.judge_scores.add(pc.struct_field(scores, "score").filter(judged).drop_null())
            _scan_ratings(scan, meta)
            if meta.type.get_field_index("question_type") >= 0:  # shards of older runs lack it
                types = pc.struct_field(meta, "question_type").drop_null()
                scan.question_types.update(_value_counts(types))
            if len(scan.examples) < EXAMPLE_ROWS:
                wanted = EXAMPLE_ROWS - len(scan.examples)
                for row in batch.select(["id", "pages", "texts"]).slice(0, wanted).to_pylist():
                    scan.examples.append(
                        {"id": row["id"], "images": len(row["pages"]), "texts": row["texts"]}
                    )
    return scan


def _scan_ratings(scan: SampleScan, meta: pa.Array) -> None:
    """Add a batch's per-axis judge ratings (qa_meta.ratings, in shards that have it)."""
    if meta.type.get_field_index("ratings") < 0:
        return
    ratings = pc.list_flatten(pc.struct_field(meta, "ratings"))
    if not len(ratings):
        return
    axes, scores = pc.struct_field(ratings, "axis"), pc.struct_field(ratings, "score")
    for axis in pc.unique(axes).to_pylist():
        chosen = pc.equal(axes, axis).fill_null(False)
        scan.ratings.setdefault(axis, Distribution()).add(scores.filter(chosen).drop_null())


def funnel_rows(stats: dict) -> list[tuple[str, int]]:
    """The funnel as (label, count) rows: stages, then the inputs `--limit` left out, units
    skipped before generation (by reason) and repeated pages, rejections per filter, errors per
    code."""
    funnel = stats["funnel"]
    rows = [(label, funnel[key]) for key, label in FUNNEL_STAGES]
    if funnel.get("inputs_cut_by_limit"):
        rows.append(("inputs left out by --limit", funnel["inputs_cut_by_limit"]))
    for reason, n in funnel.get("units_skipped", {}).items():
        rows.append((f"units skipped: {SKIP_LABELS.get(reason, reason)}", n))
    if funnel.get("pages_duplicate"):
        rows.append(("pages repeating an earlier page", funnel["pages_duplicate"]))
    for name, n in funnel["rejected_by_filter"].items():
        label = "unreadable replies (parse)" if name == "parse" else f"rejected by {name}"
        rows.append((label, n))
    rows += [(f"errors: {code}", n) for code, n in funnel["errors_by_code"].items()]
    return rows


def funnel_counts(counts: dict) -> dict:
    """The funnel's numbers (what `funnel_rows` shows) from a manifest's `counts`."""
    return {
        **{key: counts.get(key, 0) for key, _ in FUNNEL_STAGES},
        "rejected_by_filter": counts.get("rejected_by_filter", {}),
        "errors_by_code": counts.get("errors_by_code", {}),
        "units_skipped": counts.get("units_skipped", {}),
        "pages_duplicate": counts.get("pages_duplicate", 0),
        "inputs_cut_by_limit": counts.get("inputs_cut_by_limit", 0),
    }


def _stats_from(manifest: dict, scan: SampleScan) -> dict:
    counts = manifest.get("counts", {})
    statuses = Counter(record["status"] for record in manifest.get("inputs", []))
    return {
        "name": manifest.get("recipe_name"),
        "recipe_hash": manifest.get("recipe_hash"),
        "filter_chain": manifest.get("filter_chain"),
        "funnel": funnel_counts(counts),
        "units_by_layout": counts.get("units_by_layout", {}),
        "question_types": dict(scan.question_types.most_common()),
        "inputs_by_status": dict(sorted(statuses.items())),
        "shards": scan.shards,
        "rows": scan.rows,
        "pairs": scan.answer_chars.total,
        "images": int(sum(v * n for v, n in scan.pages_per_unit.counts.items())),
        "prompts": dict(scan.prompts.most_common()),
        "models": dict(scan.models.most_common()),
        "pairs_per_unit": scan.pairs_per_unit.as_dict(with_counts=True),
        "pages_per_unit": scan.pages_per_unit.as_dict(with_counts=True),
        "answer_chars": scan.answer_chars.as_dict(with_counts=False),
        "question_chars": scan.question_chars.as_dict(with_counts=False),
        "judge_scores": scan.judge_scores.as_dict(with_counts=True),
        "ratings": {axis: d.as_dict(with_counts=True) for axis, d in sorted(scan.ratings.items())},
    }


def dataset_stats(out_dir: Path) -> dict:
    """The funnel (from the manifest) and statistics of the samples (from the shards)."""
    return _stats_from(read_manifest(out_dir), scan_samples(out_dir))


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


def _figure(width: float = 6, height: float = 3.5):
    # A bare Figure drawn by the Agg canvas: no pyplot, no global backend state, no display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _counts_figure(dist: Distribution, title: str, xlabel: str, ylabel: str):
    """Bars for a quantity with few values (pairs or pages per unit)."""
    from matplotlib.ticker import MaxNLocator

    values, counts = dist.arrays()
    axes = _figure().add_subplot()
    axes.bar([_number_key(v) for v in values], counts)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return axes.figure


def _histogram_figure(dist: Distribution, title: str, xlabel: str, ylabel: str):
    """A histogram for a quantity with many values (answer length, judge score)."""
    values, counts = dist.arrays()
    axes = _figure().add_subplot()
    axes.hist(values, weights=counts, bins=min(40, len(values)))
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return axes.figure


def _funnel_figure(stats: dict):
    from matplotlib.ticker import MaxNLocator

    rows = funnel_rows(stats)
    stages, losses = rows[: len(FUNNEL_STAGES)], rows[len(FUNNEL_STAGES) :]
    figure = _figure(9, 3.5 + 0.25 * len(losses))
    left, right = figure.subplots(1, 2)
    left.bar_label(left.barh(*zip(*reversed(stages), strict=True)), padding=2)
    left.set(title="Funnel", xlabel="count")
    if losses:
        right.bar_label(
            right.barh(*zip(*reversed(losses), strict=True), color="#C44E52"), padding=2
        )
        right.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        right.text(0.5, 0.5, "nothing rejected, no errors", ha="center", va="center")
        right.set_axis_off()
    right.set(title="Rejections and errors")
    return figure


def write_plots(report: Path, stats: dict, scan: SampleScan) -> dict[str, str | None]:
    """PNG plots under report/, by name: the card's relative link, or None when nothing to show."""
    report.mkdir(parents=True, exist_ok=True)
    figures = {"funnel": _funnel_figure(stats)}
    if scan.rows:
        figures["pairs_per_unit"] = _counts_figure(
            scan.pairs_per_unit, "Pairs per unit", "pairs", "units"
        )
        figures["pages_per_unit"] = _counts_figure(
            scan.pages_per_unit, "Pages (images) per unit", "pages", "units"
        )
        figures["answer_length"] = _histogram_figure(
            scan.answer_chars, "Answer length", "characters", "pairs"
        )
    if scan.judge_scores.counts:
        figures["judge_scores"] = _histogram_figure(
            scan.judge_scores, "Judge scores", "score", "pairs"
        )
    written: dict[str, str | None] = {}
    for key in PLOTS:
        path = report / f"{key}.png"
        if key in figures:
            figures[key].savefig(path, dpi=100)
            written[key] = f"{REPORT_DIR}/{path.name}"
        else:
            path.unlink(missing_ok=True)  # a plot left from an earlier run would mislead
            written[key] = None
    return written


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
    stats = _stats_from(manifest, scan)
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
