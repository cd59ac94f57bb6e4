import numpy as np
import pytest
from datasketch import MinHash
from pairs import pair_in

from curation.filters.dataset_dedup import dataset_checker, outcome_pairs
from curation.filters.dedup import (
    DedupFilter,
    Deduplicator,
    MinHasher,
    pair_text,
    shingles,
)
from curation.filters.dedup_ray import ray_near_duplicates


def ray_dedup_verdicts(journal, dedup: DedupFilter, folder):
    """A run's whole-dataset dedup (`dataset_checker`, as `curation.run` calls it) of a journal."""
    pairs = lambda: (pair for o in journal.outcomes() for pair in outcome_pairs(o))  # noqa: E731
    return dataset_checker(dedup, 0, folder, pairs)


FACTS = [
    "The Northgate pumping station delivered 1,250 megalitres of water in 2023",
    "Elena Marsh has chaired the board of the Riverside Water Utility since 2019",
    "Average water pressure across the network was 3.5 bar during the summer months",
    "The Hollow Creek treatment plant was upgraded with ultraviolet disinfection in March",
    "Leakage fell to 11.2 percent of supply after 340 old water mains were replaced",
    "The utility served 48,200 households and 1,900 businesses in the last financial year",
    "Customer complaints about taste and odour dropped by a third after the upgrade",
    "A new reservoir at Lakeside is planned to hold forty megalitres of treated water",
]


def planted_texts() -> tuple[list[str], list[str], dict[str, str]]:
    """Distinct pairs, exact copies (case and spacing changed) and near copies (one word
    changed or added), in id order; the expected duplicates map to the pair they copy."""
    texts, expected = {}, {}
    for i, fact in enumerate(FACTS):
        texts[f"p{i:02d}"] = pair_text(f"What does the report say about item {i}?", fact + ".")
    texts["p20"] = texts["p01"].upper().replace(" ", "  ")
    expected["p20"] = "p01"
    texts["p21"] = texts["p03"].replace("March.", "March 2023.")
    expected["p21"] = "p03"
    texts["p22"] = "So " + texts["p05"]
    expected["p22"] = "p05"
    texts["p23"] = texts["p21"]  # copies a duplicate: names the earliest original it matches
    expected["p23"] = "p03"
    texts["p24"] = pair_text("What is planned at Lakeside?", "Nothing is planned there yet.")
    keys = sorted(texts)
    return keys, [texts[k] for k in keys], expected


def test_signatures_equal_datasketch_minhash():
    hasher = MinHasher(num_perm=128, seed=1, ngram=5)
    texts = [*FACTS, "two words", "", "x " * 3000]
    signatures = hasher.signatures(texts)
    for text, signature in zip(texts, signatures, strict=True):
        reference = MinHash(num_perm=128, seed=1)
        reference.update_batch(shingles(text))
        assert np.array_equal(signature, reference.hashvalues), text[:30]


def test_deduplicator_finds_exact_and_near_copies_and_keeps_the_first():
    keys, texts, expected = planted_texts()
    dedup = Deduplicator()
    found = {}
    for key, text in zip(keys, texts, strict=True):
        is_dup, first = dedup.seen(text, key)
        if is_dup:
            found[key] = first
    assert found == expected


def test_deduplicator_batched_check_equals_one_by_one():
    keys, texts, expected = planted_texts()
    verdicts = Deduplicator().check(texts, keys)
    assert {k: v.duplicate_of for k, v in zip(keys, verdicts, strict=True) if v.is_duplicate} == (
        expected
    )
    assert next(v for k, v in zip(keys, verdicts, strict=True) if k == "p20").similarity == 1.0


def test_replaying_a_key_gives_its_first_verdict():
    dedup = Deduplicator()
    assert dedup.seen("the same text here", "a") == (False, None)
    assert dedup.seen("The same  text here", "b") == (True, "a")
    assert dedup.seen("The same  text here", "b") == (True, "a")
    assert dedup.seen("the same text here", "a") == (False, None)


def test_exact_only_and_near_only():
    keys, texts, expected = planted_texts()
    exact = Deduplicator(near=False).check(texts, keys)
    assert {k for k, v in zip(keys, exact, strict=True) if v.is_duplicate} == {"p20", "p23"}
    near = Deduplicator(exact=False).check(texts, keys)
    assert {k for k, v in zip(keys, near, strict=True) if v.is_duplicate} == set(expected)


def test_dedup_filter_in_a_batch():
    keys, texts, expected = planted_texts()
    pairs = [
        pair_in("u", *text.split("\n", 1), qa_id=key) for key, text in zip(keys, texts, strict=True)
    ]
    verdicts = DedupFilter().decide(pairs)
    rejected = {k: v.reason for k, v in zip(keys, verdicts, strict=True) if not v.passed}
    assert set(rejected) == set(expected)
    assert rejected["p20"].startswith("exact duplicate of p01")
    assert rejected["p21"].startswith("near duplicate of p03 (similarity 0.")


@pytest.mark.e2e
def test_ray_near_duplicates_agree_with_the_deduplicator(ray_local):
    import ray.data

    keys, texts, expected = planted_texts()
    rows = [{"qa_id": k, "text": t} for k, t in zip(keys, texts, strict=True)]
    ds = ray.data.from_items(rows, override_num_blocks=2)
    found = ray_near_duplicates(ds, "text", "qa_id", num_partitions=1).take_all()
    assert {row["qa_id"]: row["duplicate_of"] for row in found} == expected
    streaming = Deduplicator().check(texts, keys)
    similarities = {k: v.similarity for k, v in zip(keys, streaming, strict=True)}
    for row in found:
        assert row["similarity"] == pytest.approx(similarities[row["qa_id"]])
    # Without duplicates no key is shared: the first grouping ends it.
    distinct = [row for row in rows if row["qa_id"] not in expected]
    assert ray_near_duplicates(ray.data.from_items(distinct), "text", "qa_id").take_all() == []


@pytest.mark.e2e
def test_a_runs_ray_backend_gives_the_verdicts_of_the_in_memory_index(ray_local, tmp_path):
    """The whole-dataset dedup of a run, from a real journal: Ray groups by LSH band
    (`backend: ray`) and the in-memory Deduplicator reject the same pairs for the same reasons."""
    import copy

    import pyarrow as pa
    from output_fixtures import document_units, outcome

    from curation.filters.dataset_dedup import dedup_outcome
    from curation.output.journal import Journal
    from curation.schema import OUTCOME_SCHEMA

    question = "What does the report say about item {}?".format
    facts = [(question(i), fact + ".", True) for i, fact in enumerate(FACTS)]
    a_units = document_units("aaaa", "a.pdf", 4, 2)
    b_units = document_units("bbbb", "b.pdf", 2, 2)
    near = (question(3), facts[3][1].replace("March.", "March 2023."), True)
    exact = (question(1).upper(), facts[1][1].upper(), True)
    outcomes = [
        outcome(a_units[0], facts[:4]),
        outcome(a_units[1], [*facts[4:7], near, (exact[0], exact[1], False)]),
        outcome(b_units[0], [exact, facts[7], facts[1]]),
    ]
    assert "March." in facts[3][1]
    journal = Journal(
        tmp_path, "h" * 64, ["a.pdf", "b.pdf"], {"a.pdf": "aaaa", "b.pdf": "bbbb"}.get
    )
    for made in reversed(outcomes):  # finished out of order, as a parallel run does
        journal.append(pa.Table.from_pylist([made.to_row()], schema=OUTCOME_SCHEMA))

    dedup = DedupFilter(backend="ray")
    streaming = dedup.deduplicator()
    found = ray_dedup_verdicts(journal, dedup, tmp_path / ".dedup")
    expected = [dedup_outcome(copy.deepcopy(o), dedup, streaming) for o in journal.outcomes()]
    got = [dedup_outcome(copy.deepcopy(o), dedup, found) for o in journal.outcomes()]
    assert got == expected
    reasons = [
        p.decisions[-1].reason
        for o in got
        for p in o.reply.pairs
        if p.decisions[-1].filter == "dedup" and not p.decisions[-1].passed
    ]
    assert len(reasons) == 3, reasons  # the near copy, the exact copy and the repeated pair
    assert any(r.startswith("near duplicate of aaaa") for r in reasons)
    assert sum(r.startswith("exact duplicate of aaaa") for r in reasons) == 2
    assert not (tmp_path / ".dedup").exists()


@pytest.mark.e2e
def test_identical_pairs_of_one_unit_are_duplicates_not_a_replay(ray_local, tmp_path):
    """Two identical pairs of one unit share their id (the generator's content hash of unit,
    question and answer): the second is an exact duplicate of the first, not the first fed
    again, in the run's in-memory and Ray dedup and in a chain's batch."""
    import copy

    import pyarrow as pa
    from output_fixtures import document_units, outcome

    from curation.filters.dataset_dedup import dedup_outcome
    from curation.output.journal import Journal
    from curation.schema import OUTCOME_SCHEMA
    from curation.seeding import content_id

    unit = document_units("cccc", "c.pdf", 2, 2)[0]
    same = ("Who chairs the board of the utility?", FACTS[1] + ".", True)
    made = outcome(unit, [same, ("What was delivered?", FACTS[0] + ".", True), same])
    pairs = made.reply.pairs
    for pair in pairs:  # ids as the generator makes them
        pair.qa_id = content_id(unit["unit_id"], pair.question, pair.answer)
    first_id = pairs[0].qa_id
    assert pairs[2].qa_id == first_id
    journal = Journal(tmp_path, "h" * 64, ["c.pdf"], {"c.pdf": "cccc"}.get)
    journal.append(pa.Table.from_pylist([made.to_row()], schema=OUTCOME_SCHEMA))

    dedup = DedupFilter(backend="ray")
    found = ray_dedup_verdicts(journal, dedup, tmp_path / ".dedup")
    for seen in (dedup.deduplicator(), found):
        (done,) = [dedup_outcome(copy.deepcopy(o), dedup, seen) for o in journal.outcomes()]
        last = [pair.decisions[-1] for pair in done.reply.pairs]
        assert [(d.filter, d.passed) for d in last] == [("dedup", True)] * 2 + [("dedup", False)]
        assert last[2].reason == f"exact duplicate of {first_id} (similarity 1.00)"

    contexts = [pair_in(unit["unit_id"], p.question, p.answer, qa_id=p.qa_id) for p in pairs]
    assert [d.passed for d in DedupFilter().decide(contexts)] == [True, True, False]
    with pytest.raises(ValueError, match="twice in one check"):
        Deduplicator().check(["a text", "a text"], ["k", "k"])


def test_the_dedup_backend_follows_the_setting_and_the_run_size():
    assert not DedupFilter().in_ray(1_000_000) and DedupFilter().in_ray(1_000_001)
    assert DedupFilter(backend="ray").in_ray(10)
    assert not DedupFilter(backend="memory").in_ray(10**9)
    assert not DedupFilter(backend="ray", near=False).in_ray(10**9)  # exact keys are small
    assert DedupFilter(ray_above_pairs=100).in_ray(101)
