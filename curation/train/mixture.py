"""The training mixture: Docmatix-layout Parquet shards streamed row group by row group, interleaved
by weight with a seeded generator, with a position that a checkpoint saves and a resume restores."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from curation.config import ConfigError
from curation.seeding import stable_fraction, stable_hash
from curation.train.config import MixtureEntry
from curation.train.cuts import PairCut, cut_for

READ_BATCH_ROWS = 16  # rows decoded from Parquet at a time: images stay encoded bytes until used


@dataclass
class Sample:
    """One row of a curated dataset: its page images and its question-answer turns."""

    source: str
    id: str
    images: list[bytes | None]  # None where a row stores an image by path only
    turns: list[tuple[str, str]]  # (user, assistant)
    # What the entry's cuts did since the sample before it from the same entry: its own pairs
    # kept and cut, and the rows skipped for want of a pair (counted where the sample is).
    cuts: dict[str, int] = field(default_factory=dict)


def resolve_files(entry: MixtureEntry) -> list[Path] | None:
    """The entry's Parquet shards in name order; None for a missing optional folder."""
    folder = _download(entry) if entry.hub is not None else Path(str(entry.path))
    files = sorted(folder.glob(entry.data_files))
    if files:
        return files
    if entry.optional:
        return None
    raise ConfigError(
        f"mixture entry '{entry.label()}': no {entry.data_files} under {folder}; "
        "build the dataset first with `make recipes` (or `curation run recipes/<name>.yaml`), "
        "or mark the entry `optional: true`"
    )


def _download(entry: MixtureEntry) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(
            snapshot_download(
                repo_id=str(entry.hub),
                repo_type="dataset",
                revision=entry.revision,
                allow_patterns=[entry.data_files],
            )
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        raise ConfigError(
            f"mixture entry '{entry.label()}': cannot fetch Hub dataset {entry.hub}: {exc}"
        ) from exc


def _to_sample(source: str, row: dict, fallback_id: str) -> Sample:
    images = [image.get("bytes") if image else None for image in row.get("images") or []]
    turns = [(t.get("user") or "", t.get("assistant") or "") for t in row.get("texts") or []]
    return Sample(source=source, id=str(row.get("id") or fallback_id), images=images, turns=turns)


# The parts of qa_meta that the cuts read (its texts, rationales and filter notes are not).
CUT_FIELDS = {"question_type", "scores.filter", "scores.score", "ratings.axis", "ratings.score"}


def cut_columns(parquet: pq.ParquetFile) -> list[str]:
    """The Parquet leaf columns of qa_meta the cuts need, those of them this file has."""
    found = []
    for index in range(len(parquet.schema)):
        path = parquet.schema.column(index).path
        head, _, rest = path.partition(".")
        fields = rest.replace("list.element.", "").replace("list.item.", "")
        if head == "qa_meta" and fields in CUT_FIELDS:
            found.append(path)
    return found


class ShardSource:
    """One dataset of the mixture. Rows are addressed by a position that counts every row read,
    epoch after epoch; each epoch visits the row groups in its own seeded order."""

    def __init__(
        self,
        label: str,
        files: list[Path],
        seed: int,
        eval_fraction: float,
        max_samples: int | None = None,
        cut: PairCut | None = None,
    ) -> None:
        self.label, self.seed, self.eval_fraction, self.cut = label, seed, eval_fraction, cut
        self.groups: list[tuple[Path, int, int]] = []  # (file, row group, rows used)
        total = 0
        for path in files:
            meta = pq.ParquetFile(path).metadata
            for index in range(meta.num_row_groups):
                rows = meta.row_group(index).num_rows
                if max_samples is not None:
                    rows = min(rows, max_samples - total)
                if rows > 0:
                    self.groups.append((path, index, rows))
                    total += rows
        self.rows = total
        if not total:
            raise ConfigError(f"mixture entry '{label}': its shards hold no rows")

    def is_eval(self, sample_id: str) -> bool:
        return stable_fraction(self.seed, "eval", self.label, sample_id) < self.eval_fraction

    def _epoch_order(self, epoch: int) -> list[int]:
        order = list(range(len(self.groups)))
        random.Random(stable_hash(self.seed, self.label, epoch)).shuffle(order)
        return order

    def _read_group(self, group: int, skip: int = 0) -> Iterator[tuple[Sample, list[dict]]]:
        """The group's rows from `skip` on, each with its qa_meta (read only for a cut)."""
        path, index, rows = self.groups[group]
        parquet = pq.ParquetFile(path)
        columns = [c for c in ("id", "images", "texts") if c in parquet.schema_arrow.names]
        if self.cut:
            columns += cut_columns(parquet)
        offset = sum(n for p, i, n in self.groups[:group] if p == path)  # row number in the file
        seen = 0
        for batch in parquet.iter_batches(READ_BATCH_ROWS, row_groups=[index], columns=columns):
            for row in batch.to_pylist():
                if seen >= rows:
                    return
                if seen >= skip:
                    sample = _to_sample(self.label, row, f"{path.name}#{offset + seen}")
                    yield sample, row.get("qa_meta") or []
                seen += 1

    def _cut(self, sample: Sample, meta: list[dict], epoch: int) -> Counter:
        """Leave out the sample's pairs that fail the entry's cuts; what became of them."""
        if self.cut is None:
            return Counter()
        sample.turns, counts = self.cut.apply(sample.turns, meta, sample.id, epoch)
        return counts

    def read(self, position: int) -> Iterator[tuple[Sample, int]]:
        """Training rows from `position` on, forever, each with the position after it. A row
        that the cuts leave without a pair is skipped and counted with the next sample, so that
        the counts up to a sample depend on its position alone (a resume counts the same)."""
        scanned_without_yield = 0
        pending: Counter = Counter()
        while True:
            epoch, offset = divmod(position, self.rows)
            for group in self._epoch_order(epoch):
                rows = self.groups[group][2]
                if offset >= rows:
                    offset -= rows
                    continue
                for sample, meta in self._read_group(group, skip=offset):
                    position += 1
                    if not self.is_eval(sample.id):
                        pending += self._cut(sample, meta, epoch)
                        if sample.turns or self.cut is None:
                            sample.cuts, pending = dict(pending), Counter()
                            scanned_without_yield = 0
                            yield sample, position
                            continue
                    scanned_without_yield += 1
                    if scanned_without_yield > self.rows:
                        raise ConfigError(self._nothing_left())
                offset = 0

    def _nothing_left(self) -> str:
        if self.cut is None:
            return (
                f"mixture entry '{self.label}': every row is held out for eval; "
                "lower data.eval.fraction"
            )
        return (
            f"mixture entry '{self.label}': no training row keeps a pair under its cuts "
            f"({self.cut.describe()}) or every row is held out for eval; loosen the cuts "
            "(unrated: keep keeps pairs the judge did not rate) or lower data.eval.fraction"
        )

    def eval_samples(self, limit: int) -> list[Sample]:
        """The first `limit` held-out rows in file order, under the same cuts (as in epoch 0)."""
        found: list[Sample] = []
        for group in range(len(self.groups)):
            for sample, meta in self._read_group(group):
                if len(found) >= limit:
                    return found
                if self.is_eval(sample.id):
                    self._cut(sample, meta, 0)
                    if sample.turns:
                        found.append(sample)
        return found


class MixtureStream:
    """The sources interleaved by weight with one seeded generator; `state` after every sample
    is what a checkpoint stores to continue exactly there."""

    def __init__(self, sources: list[ShardSource], weights: list[float], seed: int) -> None:
        self.sources, self.weights, self.seed = sources, weights, seed

    def initial_state(self) -> dict:
        rng = random.Random(stable_hash(self.seed, "mixture"))
        return {"emitted": 0, "positions": [0] * len(self.sources), "rng": _rng_to_json(rng)}

    def iterate(self, state: dict | None = None) -> Iterator[tuple[Sample, dict]]:
        """Samples from `state` on (the start when None), each with the state after it."""
        state = state or self.initial_state()
        rng = random.Random()
        rng.setstate(_rng_from_json(state["rng"]))
        positions = list(state["positions"])
        emitted = state["emitted"]
        readers = [source.read(p) for source, p in zip(self.sources, positions, strict=True)]
        indices = range(len(self.sources))
        while True:
            pick = rng.choices(indices, weights=self.weights)[0]
            sample, positions[pick] = next(readers[pick])
            emitted += 1
            yield (
                sample,
                {"emitted": emitted, "positions": list(positions), "rng": _rng_to_json(rng)},
            )


def _rng_to_json(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _rng_from_json(data: list) -> tuple:
    version, internal, gauss = data
    return (version, tuple(internal), gauss)


def build_mixture(
    entries: list[MixtureEntry], seed: int, eval_fraction: float, log=print
) -> MixtureStream:
    """Open every entry (skipping missing optional ones) and weigh them: `weight` as given, else
    InternVL's repeat_time x rows, so r = 1 everywhere samples in proportion to dataset size."""
    sources, weights = [], []
    for entry in entries:
        files = resolve_files(entry)
        if files is None:
            log(
                f"mixture: skipping optional '{entry.label()}' ({entry.path or entry.hub} has no data)"
            )
            continue
        source = ShardSource(
            entry.label(), files, seed, eval_fraction, entry.max_samples, cut_for(entry, seed)
        )
        sources.append(source)
        weights.append(
            entry.weight if entry.weight is not None else (entry.repeat_time or 1.0) * source.rows
        )
    if not sources:
        raise ConfigError("mixture: none of its datasets exist; build them with `make recipes`")
    return MixtureStream(sources, weights, seed)
