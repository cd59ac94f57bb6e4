"""Grounding of numbers on two labelled sets: the corpus of issue 28 (tests/data/grounding_corpus.yaml,
519 answers in the phrasings 7B-70B models use, split 70/30 by case) and the older set of issue 13
(tests/data/derived_numbers.yaml, 89 derived answers and a wrong one each, the tuning set).

Prints kept-correct and rejected-wrong per split, document kind, operation, phrasing and wrong
kind; wrong answers whose value is printed elsewhere on the page are counted apart (the page
alone cannot tell them from right ones). Then the same with `unsettled: verify` (and with
`verify_settled`) and a scripted verifier that answers from the labels. Also the time per pair.

Run: make bench-grounding   (or .venv/bin/python benchmarks/bench_grounding.py [--repeat N]
[--misses train|held_out|old] [--set field=value ...] for GroundingFilter settings)
Generated documents are rendered to PDFs in a temporary folder and read back through PyMuPDF.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from grounding_cases import load_cases  # noqa: E402
from grounding_corpus import CorpusAnswer, load_corpus, tally, verified_by_labels  # noqa: E402

from curation.filters.grounding import GroundingFilter  # noqa: E402
from curation.filters.numbers import derivation  # noqa: E402

HEADER = (
    "| {} | correct kept | wrong rejected | wrong, printed elsewhere, rejected |\n|---|---|---|---|"
)


def table(title: str, answers: list[CorpusAnswer], passed: list[bool], key) -> None:
    print(HEADER.format(title))
    for label, t in tally(answers, passed, key).items():
        print(f"| {label} | " + " | ".join(t.cells()) + " |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed passes over the old set")
    parser.add_argument(
        "--misses", choices=["train", "held_out", "old"], action="append", default=[]
    )
    parser.add_argument("--set", action="append", default=[], help="GroundingFilter field=value")
    parser.add_argument(
        "--bound",
        action="append",
        default=[],
        help="a bound of curation.filters.numbers.derivation (RELATED_SHARE=0.9, PAIR_SUMS=any, COARSE=1e9)",
    )
    args = parser.parse_args()
    settings = dict(s.split("=", 1) for s in args.set)
    for bound in args.bound:
        name, value = bound.split("=", 1)
        old = getattr(derivation, name)
        setattr(derivation, name, type(old)(value))
    with tempfile.TemporaryDirectory() as folder:
        cases = load_cases(Path(folder))
        answers = load_corpus(Path(folder))
    grounding = GroundingFilter(**settings)
    decisions = [grounding.decide([a.pair])[0] for a in answers]
    passed = [d.passed for d in decisions]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
    )
    print(f"settings: {settings or 'defaults'}; bounds: {args.bound or 'defaults'}\n")
    print(HEADER.format("split"))
    for split in ("train", "held_out"):
        chosen = [(a, p) for a, p in zip(answers, passed, strict=True) if a.split == split]
        t = tally([a for a, _ in chosen], [p for _, p in chosen])["all"]
        print(f"| corpus {split} ({len(chosen)} answers) | " + " | ".join(t.cells()) + " |")
    old = [grounding.decide([c.correct, c.wrong]) for c in cases]
    kept = sum(r.passed for r, _ in old)
    rejected = sum(not w.passed for _, w in old)
    n = len(cases)
    print(
        f"| old set, derived_numbers.yaml ({2 * n} answers) | {kept}/{n} ({kept / n:.1%}) | {rejected}/{n} ({rejected / n:.1%}) | - |\n"
    )
    print(
        "With `unsettled: verify` and a scripted verifier that answers from the corpus labels "
        "(a perfect reader: what it shows is which answers reach the verifier):\n"
    )
    print(
        "| split, verification | correct kept | wrong rejected | wrong, printed elsewhere, "
        "rejected | sent to the verifier |\n|---|---|---|---|---|"
    )
    for settled in (False, True):
        name = "unsettled: verify" + (", verify_settled" if settled else "")
        for split in ("train", "held_out"):
            sub = [a for a in answers if a.split == split]
            verified, asked = verified_by_labels(sub, settled)
            t = tally(sub, verified)["all"]
            cells = " | ".join(t.cells())
            print(f"| corpus {split}, {name} | {cells} | {asked} of {len(sub)} |")
    print()
    for split in ("train", "held_out"):
        chosen = [(a, p) for a, p in zip(answers, passed, strict=True) if a.split == split]
        sub, ok = [a for a, _ in chosen], [p for _, p in chosen]
        print(f"### corpus, {split} split\n")
        table("document kind", sub, ok, lambda a: a.doc_kind)
        table("operation", sub, ok, lambda a: a.op)
        table("phrasing", sub, ok, lambda a: a.phrasing)
        table("wrong kind", sub, ok, lambda a: a.wrong_kind or "(correct)")
    for split in args.misses:
        if split == "old":
            for case, (right, wrong) in zip(cases, old, strict=True):
                if not right.passed:
                    print(f"missed  {case.name}: {case.correct.answer!r}: {right.reason}")
                if wrong.passed:
                    print(f"let in  {case.name}: {case.wrong.answer!r}: {wrong.reason}")
            continue
        for a, d in zip(answers, decisions, strict=True):
            if a.split == split and a.correct != d.passed and not a.printed_elsewhere:
                tag = "missed" if a.correct else "let in"
                print(f"{tag}  {a.id}: Q {a.pair.question!r} A {a.pair.answer!r}: {d.reason}")
    pairs = [p for c in cases for p in (c.correct, c.wrong)]
    start = time.perf_counter()
    for _ in range(args.repeat):
        for pair in pairs:  # a fresh filter per pair: page groups built each time
            GroundingFilter(**settings).decide([pair])
    per_pair = (time.perf_counter() - start) / max(args.repeat * len(pairs), 1)
    print(
        f"\ntime per pair (old set, page groups built each time, one core): {per_pair * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
