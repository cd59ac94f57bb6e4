"""Filter benchmarks: per-pair rules + repetition throughput, Gopher repetition against DataTrove
(speed and agreement), and MinHash signatures against a plain datasketch `update` loop.

Run: make bench-filters   (or .venv/bin/python benchmarks/bench_filters.py [--pairs N])
DataTrove (and spaCy, its English word tokenizer) is installed by the make target for the
comparison only; the package never imports it. Texts come from the sample PDFs' text layer:
pairs cut from their sentences, passages of 40-200 words, and planted repetition (loops,
repeated sentences and lines) in about a tenth of them. Everything runs in one process (one
core). Prints a Markdown table; record it in docs/benchmarks.md with the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import time
from collections.abc import Callable
from pathlib import Path

import pymupdf
from datasketch import MinHash

from curation.filters import FilterChain
from curation.filters.dedup import MinHasher, pair_text, shingles
from curation.filters.repetition import RepetitionLimits, gopher_failure
from curation.schema import Pair, UnitContext
from curation.tokens import tokenize

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "data" / "samples").glob("*.pdf"))
SENTENCE = re.compile(r"(?<=[.!?])\s+")


def page_texts() -> list[str]:
    texts = []
    for path in SAMPLES:
        with pymupdf.open(path) as doc:
            texts.extend(page.get_text() for page in doc)
    return [t for t in texts if t.strip()]


def plant_repetition(text: str, rng: random.Random) -> str:
    """One of the repetition classes the filters must catch."""
    words = text.split()
    kind = rng.randrange(4)
    if kind == 0:  # a generation loop
        span = " ".join(words[: rng.randint(2, 6)])
        return f"{text} " + ", ".join([span] * rng.randint(3, 8))
    if kind == 1:  # a repeated sentence
        first = SENTENCE.split(text)[0]
        return " ".join([first] * rng.randint(2, 4) + [text])
    if kind == 2:  # repeated lines
        lines = text.splitlines() or [text]
        return "\n".join(lines + lines[: max(1, len(lines) // 2)])
    return " ".join(words + words[len(words) // 2 :])  # a repeated tail


def passages(pages: list[str], n: int, rng: random.Random) -> list[str]:
    """Passages of 40-200 words (line breaks kept), a tenth with planted repetition."""
    out = []
    for _ in range(n):
        page = rng.choice(pages)
        lines = [line for line in page.splitlines() if line.strip()]
        start = rng.randrange(len(lines))
        chunk, words = [], 0
        target = rng.randint(40, 200)
        for line in lines[start:] + lines[:start]:
            chunk.append(line)
            words += len(line.split())
            if words >= target:
                break
        text = "\n".join(chunk)
        out.append(plant_repetition(text, rng) if rng.random() < 0.1 else text)
    return out


def synthetic_pairs(pages: list[str], n: int, rng: random.Random) -> list[Pair]:
    """Pairs whose answers are sentences of a page (with its text as context), four per unit,
    some planted."""
    pairs = []
    for i in range(n):
        if i % 4 == 0:
            index = rng.randrange(len(pages))
        sentences = [s for s in SENTENCE.split(pages[index].replace("\n", " ")) if s.strip()]
        answer = " ".join(rng.sample(sentences, min(len(sentences), rng.randint(1, 3))))
        topic = " ".join(answer.split()[:4])
        if rng.random() < 0.1:
            answer = plant_repetition(answer, rng)
        pairs.append(
            Pair(
                qa_id=f"p{i}",
                question=f"What does the document say about {topic}?",
                answer=answer,
                unit=UnitContext(f"u{i // 4}", pages=[0], texts=[pages[index]]),
            )
        )
    return pairs


def rate(fn: Callable[[], object], items: int, repeat: int = 3) -> float:
    """Items per CPU-second of this process (one core), the best of `repeat` runs; CPU time
    rather than wall time, so that other work on a shared machine does not count."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return items / best


def bench_rules(pairs: list[Pair]) -> list[tuple[str, str]]:
    chain = FilterChain.load(ROOT / "filters" / "default.yaml")  # its dedup is `chain.dedup`
    repetition = next(f for f in chain.filters if f.type == "repetition")
    batches = [pairs[i : i + 256] for i in range(0, len(pairs), 256)]
    all_rate = rate(lambda: [chain.decide(b) for b in batches], len(pairs))
    repetition_rate = rate(lambda: [repetition.decide(b) for b in batches], len(pairs))
    labels = ", ".join(f.label for f in chain.filters)
    return [
        (f"default chain without dedup/judge ({labels})", f"{all_rate:,.0f} pairs/s"),
        (
            "  repetition filter alone (Gopher + loops, question and answer)",
            f"{repetition_rate:,.0f} pairs/s",
        ),
    ]


def bench_gopher(texts: list[str]) -> list[tuple[str, str]]:
    limits = RepetitionLimits()  # Gopher / DataTrove defaults

    def ours() -> list[str | None]:
        return [gopher_failure(text, tokenize(text), limits) for text in texts]

    ours_rate = rate(ours, len(texts))
    our_verdicts = ours()
    rows = [("Gopher repetition, ours (tokenize + metrics)", f"{ours_rate:,.0f} texts/s")]
    try:
        from datatrove.data import Document
        from datatrove.pipeline.filters.gopher_repetition_filter import GopherRepetitionFilter
        from datatrove.utils.word_tokenizers import WordTokenizer
    except ImportError:
        return [*rows, ("DataTrove", "not installed (pip install datatrove spacy)")]

    class SameWords(WordTokenizer):
        """DataTrove's filter with our tokenizer: both sides count the same words."""

        def word_tokenize(self, text: str) -> list[str]:
            return tokenize(text)

        def sent_tokenize(self, text: str) -> list[str]:
            return [text]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return [(0, len(text))]

    def run(reference: GopherRepetitionFilter) -> list[bool]:
        # Distinct Document objects: DataTrove caches word splits per text (lru_cache of 5).
        return [reference.filter(Document(text=t, id=str(i))) is True for i, t in enumerate(texts)]

    for label, reference in (
        ("DataTrove GopherRepetitionFilter (spaCy words, its default)", GopherRepetitionFilter()),
        (
            "DataTrove GopherRepetitionFilter (our words)",
            GopherRepetitionFilter(language=SameWords()),
        ),
    ):
        reference_rate = rate(lambda r=reference: run(r), len(texts), repeat=1)
        theirs = run(reference)
        agree = sum((v is None) == k for v, k in zip(our_verdicts, theirs, strict=True)) / len(
            texts
        )
        rows += [
            (label, f"{reference_rate:,.0f} texts/s"),
            ("  speed ratio, ours / DataTrove", f"{ours_rate / reference_rate:.1f}x"),
            (
                "  decision agreement",
                f"{agree:.2%} ({sum(not k for k in theirs)} rejected by DataTrove)",
            ),
        ]
    return rows


def bench_minhash(texts: list[str], label: str) -> list[tuple[str, str]]:
    hasher = MinHasher(num_perm=128, seed=1, ngram=5)
    sample = texts[: max(1, len(texts) // 10)]  # the plain loop is slow: time it on a tenth

    def plain_update() -> None:
        for text in sample:
            minhash = MinHash(num_perm=128, seed=1)
            for shingle in shingles(text):
                minhash.update(shingle)

    def update_batch() -> None:
        for text in sample:
            MinHash(num_perm=128, seed=1).update_batch(shingles(text))

    plain = rate(plain_update, len(sample), repeat=1)
    batch = rate(update_batch, len(sample))
    ours = rate(lambda: hasher.signatures(texts), len(texts))
    words = sum(len(t.split()) for t in texts) / len(texts)
    return [
        (
            f"MinHash on {label} (~{words:.0f} words), plain datasketch update loop",
            f"{plain:,.0f} texts/s",
        ),
        (
            "  datasketch update_batch, one text at a time",
            f"{batch:,.0f} texts/s ({batch / plain:.1f}x)",
        ),
        (
            "  MinHasher.signatures, whole batch in numpy",
            f"{ours:,.0f} texts/s (**{ours / plain:.1f}x**)",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20_000, help="Synthetic pairs to filter.")
    parser.add_argument("--texts", type=int, default=4_000, help="Passages for Gopher/MinHash.")
    args = parser.parse_args()
    rng = random.Random(0)
    pages = page_texts()
    pairs = synthetic_pairs(pages, args.pairs, rng)
    texts = passages(pages, args.texts, rng)
    rows = bench_rules(pairs)
    rows += bench_gopher(texts)
    rows += bench_minhash([pair_text(p.question, p.answer) for p in pairs], "QA pairs")
    rows += bench_minhash(texts, "passages")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"one process; {args.pairs} pairs, {args.texts} passages from {len(SAMPLES)} sample PDFs\n"
    )
    print("| measure | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
