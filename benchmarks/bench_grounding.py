"""Grounding of derived numbers on the labeled set (tests/data/derived_numbers.yaml): the share
of correct derived answers kept, of wrong ones (value moved by 12-30%) rejected, and the time per
pair.

Run: make bench-grounding   (or .venv/bin/python benchmarks/bench_grounding.py [--repeat N])
Generated documents are rendered to PDFs in a temporary folder and read back through
PyMuPDF like the sample PDFs. Prints a Markdown table for docs/benchmarks.md and the misses.
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

from curation.filters.grounding import GroundingFilter  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed passes over the set")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cases = load_cases(Path(folder))
    pairs = [p for c in cases for p in (c.correct, c.wrong)]
    grounding = GroundingFilter()
    decisions = [grounding.decide([p])[0] for p in pairs]
    start = time.perf_counter()
    for _ in range(args.repeat):
        # A fresh filter per pass: page groups are built once per unit within a decide() call.
        for pair in pairs:
            GroundingFilter().decide([pair])
    per_pair = (time.perf_counter() - start) / (args.repeat * len(pairs))
    kept = sum(d.passed for d in decisions[0::2])
    rejected = sum(not d.passed for d in decisions[1::2])
    for case, right, wrong in zip(cases, decisions[0::2], decisions[1::2], strict=True):
        if not right.passed:
            print(f"missed  {case.name}: {case.correct.answer!r}: {right.reason}")
        if wrong.passed:
            print(f"let in  {case.name}: {case.wrong.answer!r}: {wrong.reason}")
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
    )
    print("| measure | result |\n|---|---|")
    print(f"| labeled cases (correct + wrong answer each) | {len(cases)} |")
    print(f"| correct derived answers kept | {kept}/{len(cases)} ({kept / len(cases):.1%}) |")
    print(f"| wrong answers rejected | {rejected}/{len(cases)} ({rejected / len(cases):.1%}) |")
    print(f"| time per pair (page groups built each time, one core) | {per_pair * 1e3:.1f} ms |")


if __name__ == "__main__":
    main()
