"""The dedup of a whole dataset, one entry for a run's assembly and for `curation filter`:
`dataset_checker` answers in memory (`Deduplicator`) or, for datasets too large for one index,
from Ray (`curation.filters.dedup_ray`), with the same verdicts either way."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from curation.filters.dedup import (
    DedupFilter,
    Deduplicator,
    KnownVerdicts,
    occurrence_keys,
    pair_text,
)
from curation.schema import Outcome


def outcome_pairs(outcome: Outcome) -> Iterator[tuple[str, str]]:
    """(key, text) of each pair of an Outcome that dedup checks. Identical pairs of one unit
    share a content-hash id: numbered apart (`occurrence_keys`), the second is an exact
    duplicate of the first rather than the first one fed again."""
    alive = outcome.kept()
    keys = occurrence_keys([p.qa_id for p in alive])
    for pair, key in zip(alive, keys, strict=True):
        yield key, pair_text(pair.question, pair.answer)


def dedup_outcome(outcome: Outcome, dedup: DedupFilter, seen: Checker) -> Outcome:
    """Add the dedup decision to each pair that passed every other filter (the first of a
    group of duplicates, in dataset order, is kept)."""
    pairs = list(outcome_pairs(outcome))
    verdicts = seen.check([text for _, text in pairs], [key for key, _ in pairs])
    for pair, verdict in zip(outcome.kept(), verdicts, strict=True):
        pair.decisions.append(dedup.decision(verdict))
    return outcome


Checker = Deduplicator | KnownVerdicts


def dataset_checker(
    dedup: DedupFilter,
    count: int,
    staging: Path,
    pairs: Callable[[], Iterable[tuple[str, str]]],
    address: str | None = None,
) -> Checker:
    """The dedup over a whole dataset of about `count` pairs, for a run's assembly and for
    `curation filter` alike: the dataset is then checked in order with `check(texts, keys)`.

    In memory (`DedupFilter.in_ray` says no), a fresh Deduplicator that decides as the pairs
    come. Otherwise `pairs()`, (key, text) in dataset order, is read once now, grouped by LSH
    band in Ray (`curation.filters.dedup_ray`) under `staging`, and the duplicates returned."""
    if not dedup.in_ray(count):
        return dedup.deduplicator()
    from curation.filters.dedup_ray import RayDedup

    staged = RayDedup(dedup, staging)
    for key, text in pairs():
        staged.add(key, text)
    return staged.verdicts(address)
