"""What `curation view` reads: a finished output folder, the journal of a run in progress, or
the output folder of `curation filter`.

All are read batch by batch (never a whole dataset in memory) and only read: a running folder's
journal chunks are opened read-only and its lock is never taken, so a view can watch a run.
All give the same things: Sample rows (the shard layout), Reject and InputError rows, the
funnel, and each pair's fate (kept, or the filter that dropped it) for a comparison. A Parquet
file that cannot be read (truncated, not Parquet, a link to something else) is an error row
naming it (code `unreadable_shard`), shown with the errors; the rest of the folder is shown.
The run in progress is `curation.view.running`'s; the Parquet reading and the pairs' fates that
all three share are `curation.view.rows`'.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from curation.outdir import MARKER, TOOL, read_json
from curation.output.finished import OutputFolderError, data_files, read_manifest
from curation.output.journal import JOURNAL
from curation.output.shards import DATA_DIR, ERRORS_DIR, FUNNEL_FILE, REJECTS_DIR
from curation.output.stats import funnel_counts, funnel_rows
from curation.view.rows import Fate, ShardReader, kept_fates, reject_fate
from curation.view.running import RunningFolder

# What the overview counts and a comparison need of a row `curation filter` kept: no images.
FILTERED_META = [
    "id",
    "doc_id",
    "texts",
    "qa_meta",
    "question",
    "answer",
    "prompt_id",
    "question_type",
]


class FinishedFolder:
    """The output folder of a finished run: manifest.json, data/, rejects/, errors/."""

    status = "finished"

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.manifest = read_manifest(self.out_dir)
        self.name = self.manifest.get("recipe_name") or self.out_dir.name
        self.shards = ShardReader()

    def funnel(self) -> list[tuple[str, int]]:
        return funnel_rows({"funnel": funnel_counts(self.manifest.get("counts", {}))})

    def base_counts(self) -> dict[str, Counter]:
        """Counts the manifest holds: inputs by status, units by layout."""
        counts = self.manifest.get("counts", {})
        return {
            "inputs_by_status": Counter(r["status"] for r in self.manifest.get("inputs", [])),
            "units_by_layout": Counter(counts.get("units_by_layout") or {}),
        }

    def samples(self) -> Iterator[dict]:
        """Sample rows, images included, in shard order."""
        return self.shards.rows(data_files(self.out_dir))

    def sample_meta(self) -> Iterator[dict]:
        """Sample rows without images or texts: id, doc_id, qa_meta."""
        return self.shards.rows(data_files(self.out_dir), ["id", "doc_id", "qa_meta"])

    def rejects(self) -> Iterator[dict]:
        return self.shards.rows(sorted((self.out_dir / REJECTS_DIR).glob("*.parquet")))

    def errors(self) -> Iterator[dict]:
        """The run's error rows, then one for each file this view could not read (after every
        other pass of the site, so all are known)."""
        yield from self.shards.rows(sorted((self.out_dir / ERRORS_DIR).glob("*.parquet")))
        yield from self.shards.errors()

    def fates(self) -> Iterator[Fate]:
        """Every pair's fate: the kept pairs of data/, then the rejected ones of rejects/."""
        for row in self.shards.rows(data_files(self.out_dir), ["texts", "qa_meta"]):
            yield from kept_fates(row)
        for row in self.rejects():
            found = reject_fate(row)
            if found is not None:
                yield found


def kept_row(row: dict, key: str) -> dict:
    """A row `curation filter` kept, in any input layout, as a Sample row: its own id or else
    `key` (its place in the shards), and one qa_meta entry per pair (empty where the row has
    none: a Docmatix row's pairs have no qa_id, so a comparison cannot match them). A flat row
    is one pair, whose qa_id is the row's id, as its rejects name it."""
    own = row.get("id")
    row_id = str(own) if own not in (None, "") else key
    if "texts" not in row:
        info = {k: row.get(k) for k in ("prompt_id", "question_type", "rationale", "model")}
        text = {"user": row.get("question"), "assistant": row.get("answer")}
        return {
            "id": row_id,
            "doc_id": row.get("doc_id"),
            "pages": row.get("pages") or [],
            "texts": [{**text, "source": row.get("source") or ""}],
            "qa_meta": [
                {
                    **info,
                    "evidence_pages": row.get("evidence_pages"),
                    "qa_id": None if row_id == key else row_id,
                }
            ],
        }
    texts, meta = row.get("texts") or [], row.get("qa_meta")
    aligned = isinstance(meta, list) and len(meta) == len(texts)
    qa_meta = [info or {} for info in meta] if aligned else [{} for _ in texts]
    return {**row, "id": row_id, "texts": texts, "qa_meta": qa_meta}


class FilteredFolder:
    """The output folder of `curation filter`: funnel.json, data/ (the kept rows, in the input's
    layout: our Sample rows, Docmatix rows of images and texts, or flat question/answer rows,
    one shard series per split) and rejects/. Each kept row is shown as one sample."""

    status = "filtered"

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.report = read_json(self.out_dir / FUNNEL_FILE)
        if self.report is None:
            raise OutputFolderError(
                f"{self.out_dir / FUNNEL_FILE}: not readable as the funnel `curation filter` "
                "writes (a JSON object); rerun the filter"
            )
        self.name = self.out_dir.name
        self.shards = ShardReader()

    def kept(self, columns: list[str] | None = None) -> Iterator[dict]:
        for path in sorted((self.out_dir / DATA_DIR).glob("*.parquet")):
            for index, row in enumerate(self.shards.rows([path], columns)):
                yield kept_row(row, f"{path.stem}:{index}")

    def funnel(self) -> list[tuple[str, int]]:
        report = self.report
        rows = [("rows in", report.get("rows_in", 0)), ("pairs in", report.get("pairs_in", 0))]
        for entry in report.get("filters") or []:
            rows.append((f"rejected by {entry.get('filter')}", entry.get("rejected", 0)))
        rows += [(f"not run (no engine): {name}", 0) for name in report.get("inactive") or []]
        rows += [
            ("pairs kept", report.get("pairs_kept", 0)),
            ("pairs rejected", report.get("pairs_rejected", 0)),
            ("rows out", report.get("rows_out", 0)),
        ]
        return rows

    def base_counts(self) -> dict[str, Counter]:
        return {}

    def samples(self) -> Iterator[dict]:
        return self.kept()

    def sample_meta(self) -> Iterator[dict]:
        return self.kept(FILTERED_META)

    def rejects(self) -> Iterator[dict]:
        return self.shards.rows(sorted((self.out_dir / REJECTS_DIR).glob("*.parquet")))

    def errors(self) -> Iterator[dict]:
        """`curation filter` writes no errors: only the files this view could not read."""
        return self.shards.errors()

    def fates(self) -> Iterator[Fate]:
        for row in self.kept(FILTERED_META):
            yield from kept_fates(row)
        for row in self.rejects():
            found = reject_fate(row)
            if found is not None:
                yield found


Source = FinishedFolder | RunningFolder | FilteredFolder


def open_source(out_dir: Path) -> Source:
    """The finished output folder, the running one (a journal, no manifest yet), or the output of
    `curation filter` (funnel.json); an OutputFolderError naming the folder when it is none."""
    out_dir = Path(out_dir)
    if (out_dir / "manifest.json").is_file():
        return FinishedFolder(out_dir)
    if (out_dir / JOURNAL).is_dir():
        return RunningFolder(out_dir)
    if (out_dir / FUNNEL_FILE).is_file():
        return FilteredFolder(out_dir)
    marker = read_json(out_dir / MARKER) or {}
    command = marker.get("command") if marker.get("tool") == TOOL else None
    if command == "export":
        raise OutputFolderError(
            f"{out_dir}: the output of `curation export` (training annotations and image files, "
            "no rejects or funnel); view the folder it was exported from instead"
        )
    if command == "filter":
        raise OutputFolderError(
            f"{out_dir}: `curation filter` has not finished writing this folder (no "
            f"{FUNNEL_FILE} yet); let it finish, or rerun it"
        )
    raise OutputFolderError(
        f"{out_dir}: not an output folder of `curation run` or `curation filter` (no "
        f"manifest.json, no {JOURNAL}/ of a run in progress, no {FUNNEL_FILE}); expected e.g. "
        "out/<recipe>"
    )
