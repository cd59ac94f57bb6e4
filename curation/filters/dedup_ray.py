"""The whole-dataset dedup in Ray, for datasets whose pairs do not fit one in-memory index:
`RayDedup` streams the pairs to Parquet files and `ray_near_duplicates` groups them by LSH band,
with the same verdicts as a `Deduplicator` fed in the same order (`dataset_checker` chooses)."""

from __future__ import annotations

import shutil
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray
import ray.data
from ray.data.context import ShuffleStrategy

from curation.filters.dedup import (
    DedupFilter,
    KnownVerdicts,
    MinHasher,
    Verdict,
    exact_key,
    lsh_bands,
)
from curation.runtime import init_ray

HASH_BATCH_ROWS = 4096  # texts hashed per batch in Ray: a whole block at once costs GBs
KEY_BUCKETS = 1024  # Ray groups LSH keys by bucket, not one Python call per key
DEDUP_FILE_ROWS = 50_000  # pairs per Parquet file handed to Ray's dedup (one read task each)
# Up to this many pairs the groupings use Ray's task-based sort shuffle: the hash shuffle's
# aggregator actors, which pay off at scale, cost seconds to start for each of the two groupings
# (a 30-pair dedup: 26 s with them, 4 s without, on 2 CPUs). The verdicts are the same.
SORT_SHUFFLE_PAIRS = 100_000


class RayDedup:
    """Pairs added in dataset order are streamed to Parquet files in `folder`; `verdicts`
    groups them by LSH band in Ray (`ray_near_duplicates`) and brings only the duplicates back.
    The folder is the tool's own staging, emptied first and removed when done."""

    SCHEMA = pa.schema([("qa_id", pa.string()), ("text", pa.string()), ("order", pa.int64())])

    def __init__(self, dedup: DedupFilter, folder: Path) -> None:
        self.dedup, self.folder = dedup, folder
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.rows: list[dict] = []
        self.added = self.files = 0

    def add(self, qa_id: str, text: str) -> None:
        self.rows.append({"qa_id": qa_id, "text": text, "order": self.added})
        self.added += 1
        if len(self.rows) >= DEDUP_FILE_ROWS:
            self._write()

    def _write(self) -> None:
        name = f"pairs-{self.files:06d}.parquet"
        pq.write_table(pa.Table.from_pylist(self.rows, schema=self.SCHEMA), self.folder / name)
        self.rows = []
        self.files += 1

    def verdicts(self, address: str | None = None) -> KnownVerdicts:
        """The duplicates among the pairs added (Ray started or joined at `address` if it is
        not running); the staging folder is removed."""
        if self.rows or not self.files:
            self._write()
        init_ray(address)
        dedup = self.dedup
        pairs = ray.data.read_parquet(str(self.folder))  # with a context of its own
        if self.added <= SORT_SHUFFLE_PAIRS:
            pairs.context.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
        found = ray_near_duplicates(
            pairs,
            "text",
            "qa_id",
            order_col="order",
            threshold=dedup.threshold,
            num_perm=dedup.num_perm,
            ngram=dedup.ngram,
            seed=dedup.seed,
            exact=dedup.exact,
        )
        verdicts = {
            row["qa_id"]: Verdict(True, row["duplicate_of"], row["similarity"], row["kind"])
            for row in found.iter_rows()
        }
        shutil.rmtree(self.folder, ignore_errors=True)
        return KnownVerdicts(verdicts)


def ray_near_duplicates(
    ds: ray.data.Dataset,
    text_col: str,
    id_col: str,
    order_col: str | None = None,
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 5,
    seed: int = 1,
    exact: bool = True,
    num_partitions: int | None = None,
) -> ray.data.Dataset:
    """Duplicates in a Ray dataset without one in-memory index: rows `{id, duplicate_of,
    similarity, kind}`, one per duplicate, with the same verdicts as a `Deduplicator` fed in
    order. Order is `order_col` (default: the id).

    1. Each row's LSH band keys (plus its exact-text key) travel as small (key, order) rows,
       grouped by a hash bucket of the key; in each bucket the keys that two or more rows share
       are found at once (a group per key would cost a Python call per row), and only their
       rows come back as candidates — most rows share nothing, and their signatures never
       travel.
    2. The candidates' rows are read again, their signatures computed and sent once per shared
       key; in each bucket every key's rows keep their verified pairs (signature agreement >=
       threshold, or the same exact key), and a last grouping keeps each duplicate's earliest
       match. `num_partitions` sets the shuffles' width (Ray's default when None).
    """
    bands = lsh_bands(threshold, num_perm)
    exact_bit = len(bands)  # the bit of a row's exact-text key in its mask of shared keys
    order_col = order_col or id_col
    rows = ds.select_columns(list(dict.fromkeys([text_col, id_col, order_col])))

    def keys_of(text: str, signature: np.ndarray, mask: int = -1) -> list[tuple[int, bytes]]:
        """(bit, key) of a row's band keys and exact key, those in `mask` only."""
        keys = [
            (index, index.to_bytes(2, "big") + signature[start:end].tobytes())
            for index, (start, end) in enumerate(bands)
            if mask >> index & 1
        ]
        if exact and mask >> exact_bit & 1:
            keys.append((exact_bit, b"exact" + exact_key(text)))
        return keys

    def band_rows(batch: dict) -> dict:
        texts = [str(t) for t in batch[text_col]]
        signatures = MinHasher(num_perm, seed, ngram).signatures(texts)
        out: dict[str, list] = {"bucket": [], "band": [], "bit": [], "order": []}
        for text, order, signature in zip(texts, batch[order_col], signatures, strict=True):
            for bit, key in keys_of(text, signature):
                out["bucket"].append(zlib.crc32(key) % KEY_BUCKETS)
                out["band"].append(key)
                out["bit"].append(bit)
                out["order"].append(order)
        return out

    def shared(bucket: dict) -> dict:
        counts = Counter(bucket["band"].tolist())
        keep = np.fromiter((counts[key] > 1 for key in bucket["band"].tolist()), dtype=bool)
        return {"bit": bucket["bit"][keep], "order": bucket["order"][keep]}

    masks: dict = {}  # order -> bit mask of the keys it shares with another row
    candidates = (
        rows.map_batches(band_rows, batch_format="numpy", batch_size=HASH_BATCH_ROWS)
        .groupby("bucket", num_partitions=num_partitions)
        .map_groups(shared, batch_format="numpy")
    )
    for batch in candidates.iter_batches(batch_format="numpy", batch_size=65_536):
        for bit, order in zip(batch["bit"].tolist(), batch["order"].tolist(), strict=True):
            masks[order] = masks.get(order, 0) | 1 << bit
    if not masks:
        return rows.limit(0)  # nothing shares a key: no duplicates

    def member_rows(batch: dict, masks: dict) -> dict:
        orders = batch[order_col].tolist()
        keep = [i for i, order in enumerate(orders) if order in masks]
        texts = [str(batch[text_col][i]) for i in keep]
        signatures = MinHasher(num_perm, seed, ngram).signatures(texts)
        out: dict[str, list] = {"bucket": [], "band": [], "id": [], "order": [], "signature": []}
        for i, text, signature in zip(keep, texts, signatures, strict=True):
            for _, key in keys_of(text, signature, masks[orders[i]]):
                out["bucket"].append(zlib.crc32(key) % KEY_BUCKETS)
                out["band"].append(key)
                out["id"].append(batch[id_col][i])
                out["order"].append(orders[i])
                out["signature"].append(signature.tobytes())
        return out

    def bucket_matches(bucket: dict) -> dict:
        found: dict[str, list] = {
            "id": [],
            "duplicate_of": [],
            "order": [],
            "similarity": [],
            "kind": [],
        }
        groups: dict[bytes, list[int]] = {}
        for row, key in enumerate(bucket["band"].tolist()):
            groups.setdefault(key, []).append(row)
        for key, group in groups.items():
            if len(group) < 2:
                continue
            is_exact = key.startswith(b"exact")
            members = sorted(
                (bucket["order"][r], bucket["id"][r], bucket["signature"][r]) for r in group
            )
            members = [(o, i, np.frombuffer(s, dtype=np.uint32)) for o, i, s in members]
            for position, (order, row_id, signature) in enumerate(members):
                for other_order, other_id, other in members[:position]:
                    similarity = 1.0 if is_exact else float(np.mean(other == signature))
                    if similarity >= threshold and other_order != order:
                        found["id"].append(row_id)
                        found["duplicate_of"].append(other_id)
                        found["order"].append(other_order)
                        found["similarity"].append(similarity)
                        found["kind"].append("exact" if is_exact else "near")
                        break
        return found

    def earliest(group: dict) -> dict:
        # The earliest match; of two with the same text, the exact one (as Deduplicator does).
        best = min(
            range(len(group["id"])),
            key=lambda i: (
                group["order"][i],
                -group["similarity"][i],
                group["kind"][i] != "exact",
            ),
        )
        return {
            id_col: [group["id"][best]],
            "duplicate_of": [group["duplicate_of"][best]],
            "similarity": [float(group["similarity"][best])],
            "kind": [str(group["kind"][best])],
        }

    matches = (
        rows.map_batches(
            member_rows,
            batch_format="numpy",
            batch_size=HASH_BATCH_ROWS,
            fn_kwargs={"masks": masks},
        )
        .groupby("bucket", num_partitions=num_partitions)
        .map_groups(bucket_matches, batch_format="numpy")
    )
    return matches.groupby("id", num_partitions=num_partitions).map_groups(
        earliest, batch_format="numpy"
    )
