"""Cuts on a mixture entry's pairs from what the curation stored with each of them (`qa_meta`:
judge ratings per axis, question type, each filter's score), applied while the shards stream:
the data is read as it is, the failing pairs are left out of the sample's turns."""

from __future__ import annotations

import random
from collections import Counter

from curation.seeding import stable_hash
from curation.train.config import MixtureEntry

# The counter names a cut adds to the data report (per entry), besides pairs_cut_<reason>.
KEPT, KEPT_UNRATED, SAMPLES_CUT = "pairs_kept", "pairs_kept_unrated", "samples_cut"


def _ratings(meta: dict) -> dict[str, float]:
    return {
        str(r["axis"]): float(r["score"])
        for r in meta.get("ratings") or []
        if r and r.get("axis") and r.get("score") is not None
    }


def _scores(meta: dict) -> dict[str, float]:
    return {
        str(s["filter"]): float(s["score"])
        for s in meta.get("scores") or []
        if s and s.get("filter") and s.get("score") is not None
    }


class PairCut:
    """One entry's cuts. `apply` keeps a sample's passing turns and counts every pair once: kept,
    or cut by the first rule it fails (question_type, score, unscored, rating, unrated, then
    max_pairs among those left)."""

    def __init__(self, entry: MixtureEntry, seed: int) -> None:
        self.entry, self.seed, self.label = entry, seed, entry.label()

    def reason(self, meta: dict) -> tuple[str | None, bool]:
        """Why the pair of this `qa_meta` entry is cut (None: kept), and whether a threshold
        found no value stored for it."""
        entry, missing = self.entry, False
        types = entry.question_types
        if types is not None and not types.keeps(meta.get("question_type")):
            return "question_type", False
        if entry.min_scores:
            scores = _scores(meta)
            if any(scores.get(f, least) < least for f, least in entry.min_scores.items()):
                return "score", False
            if not set(entry.min_scores) <= set(scores):
                if entry.unrated == "drop":
                    return "unscored", True
                missing = True
        if entry.min_ratings or entry.min_rating_mean is not None:
            ratings = _ratings(meta)
            if any(ratings.get(a, least) < least for a, least in entry.min_ratings.items()):
                return "rating", False
            least_mean = entry.min_rating_mean
            # The mean over every axis the pair was rated on, as the judge computes its score.
            mean = round(sum(ratings.values()) / len(ratings), 3) if ratings else None
            if least_mean is not None and mean is not None and mean < least_mean:
                return "rating", False
            if not set(entry.min_ratings) <= set(ratings) or (
                least_mean is not None and mean is None
            ):
                if entry.unrated == "drop":
                    return "unrated", True
                missing = True
        return None, missing

    def apply(
        self, turns: list, meta: list[dict], sample_id: str, epoch: int
    ) -> tuple[list, Counter]:
        """The turns kept (in their order) and the counts. `meta` is aligned with `turns`; a turn
        without an entry (a dataset without qa_meta) has nothing stored: unrated, untyped."""
        counts: Counter = Counter()
        kept: list[int] = []
        unrated: set[int] = set()
        for index in range(len(turns)):
            why, missing = self.reason(meta[index] if index < len(meta) else {})
            if why is not None:
                counts[f"pairs_cut_{why}"] += 1
                continue
            kept.append(index)
            if missing:
                unrated.add(index)
        limit = self.entry.max_pairs_per_sample
        if limit is not None and len(kept) > limit:
            # Drawn anew each epoch, so that over epochs every passing pair is trained on.
            rng = random.Random(stable_hash(self.seed, "pairs", self.label, sample_id, epoch))
            chosen = set(rng.sample(kept, limit))
            counts["pairs_cut_max_pairs"] += len(kept) - limit
            kept = [i for i in kept if i in chosen]
        counts[KEPT] += len(kept)
        counts[KEPT_UNRATED] += len(unrated.intersection(kept))
        if not kept:
            counts[SAMPLES_CUT] += 1
        return [turns[i] for i in kept], +counts

    def describe(self) -> str:
        """The cuts in a few words, for the training log."""
        entry, parts = self.entry, []
        parts += [f"{axis} >= {least:g}" for axis, least in entry.min_ratings.items()]
        if entry.min_rating_mean is not None:
            parts.append(f"rating mean >= {entry.min_rating_mean:g}")
        parts += [f"{name} score >= {least:g}" for name, least in entry.min_scores.items()]
        if entry.min_ratings or entry.min_rating_mean is not None or entry.min_scores:
            parts.append(f"unrated {'kept' if entry.unrated == 'keep' else 'dropped'}")
        if entry.question_types is not None:
            kind = "only" if entry.question_types.include else "not"
            types = entry.question_types.include or entry.question_types.exclude or []
            parts.append(f"{kind} {', '.join(types)}")
        if entry.max_pairs_per_sample is not None:
            parts.append(f"at most {entry.max_pairs_per_sample} pairs a sample")
        return "; ".join(parts)


def cut_for(entry: MixtureEntry, seed: int) -> PairCut | None:
    return PairCut(entry, seed) if entry.has_cuts() else None
