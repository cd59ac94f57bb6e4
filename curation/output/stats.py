"""The numbers of a finished dataset: the funnel (from the manifest) and statistics of the
samples (from the shards), as the card, its plots, stats.json and `curation stats` show them.

The shards are scanned once, reading only the columns a statistic needs (never the images),
batch by batch into bounded-memory value counts (`Distribution`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.output.finished import data_files, read_manifest

SCAN_BATCH_ROWS = 1024
EXAMPLE_ROWS = 3
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
            out["counts"] = {number_key(v): n for v, n in sorted(self.counts.items())}
        return out


def number_key(value: float) -> str:
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


def stats_from(manifest: dict, scan: SampleScan) -> dict:
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
    return stats_from(read_manifest(out_dir), scan_samples(out_dir))
