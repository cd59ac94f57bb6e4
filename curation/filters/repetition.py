"""Repetition: the Gopher n-gram and line metrics, and generation loops (a span repeated back to back).

The Gopher metrics follow Rae et al. 2021 (table A1) as DataTrove computes them, so a text gets
the same verdict from `gopher_failure` as from DataTrove's `GopherRepetitionFilter` given the same
words. They were made for web pages: on a ten-word answer the most frequent 2-gram covers a fifth
of the text without any repetition, so each field gets its own limits (`min_words`,
`top_ngram_min_count`). Loops are what a small generator produces long before those fractions
trip: "the pump, the pump, the pump". They are found for a whole batch at once with numpy.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import ClassVar

import numpy as np
from pydantic import Field

from curation.config import StrictModel
from curation.filters.base import Filter
from curation.filters.rules import PairField, field_text, without_markdown_rules
from curation.schema import Decision, Pair
from curation.tokens import tokenize

PARAGRAPH_BREAK = re.compile(r"\n{2,}")
LINE_BREAK = re.compile(r"\n+")


class RepetitionLimits(StrictModel):
    """Limits for one field; a fraction above its limit rejects (None switches a metric off)."""

    dup_line_frac: float | None = Field(0.30, ge=0, le=1)
    dup_para_frac: float | None = Field(0.30, ge=0, le=1)
    dup_line_char_frac: float | None = Field(0.20, ge=0, le=1)
    dup_para_char_frac: float | None = Field(0.20, ge=0, le=1)
    top_ngram_char_frac: dict[int, float] = Field(
        default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16},
        description="Characters in the most frequent n-gram (times its count) over all characters.",
    )
    dup_ngram_char_frac: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        description="Characters in n-grams that occurred earlier in the text, over all characters.",
    )
    top_ngram_min_count: int = Field(
        1,
        ge=1,
        description="1 counts the most frequent n-gram even when it occurs once (Gopher, DataTrove); "
        "2 counts only repeated n-grams, which short fields need.",
    )
    min_words: int = Field(0, ge=0, description="Shorter texts skip the Gopher fractions.")
    loop_repeats: int | None = Field(
        3, ge=2, description="A span this many times back to back is a loop (None: no check)."
    )
    loop_max_period: int = Field(40, ge=1, le=1000, description="Longest looping span, in tokens.")
    loop_min_chars: int = Field(
        12, ge=1, description="Shorter repeated stretches ('no, no, no') are not loops."
    )


def _duplicates(items: Sequence[str]) -> tuple[int, int]:
    """How many items equal an earlier one, and their characters."""
    if len(set(items)) == len(items):
        return 0, 0
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def _duplicated_ngram_chars(words: Sequence[str], n: int) -> int:
    """Characters of n-grams seen before, scanning left to right and skipping a matched n-gram."""
    grams = _ngrams(words, n)
    seen: set[tuple[str, ...]] = set()
    chars = index = 0
    while index < len(grams):
        gram = grams[index]
        if gram in seen:
            chars += sum(map(len, gram))
            index += n
        else:
            seen.add(gram)
            index += 1
    return chars


def _ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return list(zip(*(words[i:] for i in range(n)), strict=False))


def gopher_failure(text: str, words: Sequence[str], limits: RepetitionLimits) -> str | None:
    """The first Gopher metric over its limit, as 'name value > limit', or None."""
    n_chars = len(text)
    if not n_chars or len(words) < limits.min_words:
        return None
    paragraphs = PARAGRAPH_BREAK.split(text.strip())
    count, chars = _duplicates(paragraphs)
    if limits.dup_para_frac and count / len(paragraphs) > limits.dup_para_frac:
        return f"dup_para_frac {count / len(paragraphs):.2f} > {limits.dup_para_frac}"
    if limits.dup_para_char_frac and chars / n_chars > limits.dup_para_char_frac:
        return f"dup_para_char_frac {chars / n_chars:.2f} > {limits.dup_para_char_frac}"
    lines = LINE_BREAK.split(text)
    count, chars = _duplicates(lines)
    if limits.dup_line_frac and count / len(lines) > limits.dup_line_frac:
        return f"dup_line_frac {count / len(lines):.2f} > {limits.dup_line_frac}"
    if limits.dup_line_char_frac and chars / n_chars > limits.dup_line_char_frac:
        return f"dup_line_char_frac {chars / n_chars:.2f} > {limits.dup_line_char_frac}"

    # Without a repeated 2-gram no longer n-gram repeats either: the most frequent n-gram is then
    # the first one, once, and nothing is duplicated. Most clean text ends here.
    repeats = True
    for n, limit in sorted(limits.top_ngram_char_frac.items()):
        if len(words) < n:
            continue
        if repeats:
            gram, count = max(Counter(_ngrams(words, n)).items(), key=itemgetter(1))
            repeats = count > 1
        else:
            gram, count = tuple(words[:n]), 1
        if count < limits.top_ngram_min_count:
            continue
        fraction = (sum(map(len, gram)) + n - 1) * count / n_chars
        if fraction > limit:
            return f"top_{n}_gram {fraction:.2f} > {limit}"
    if not repeats or not limits.dup_ngram_char_frac:
        return None
    shortest = min(limits.dup_ngram_char_frac)
    grams = _ngrams(words, shortest)
    if len(set(grams)) == len(grams):
        return None
    for n, limit in sorted(limits.dup_ngram_char_frac.items()):
        fraction = _duplicated_ngram_chars(words, n) / n_chars
        if fraction > limit:
            return f"duplicated_{n}_n_grams {fraction:.2f} > {limit}"
    return None


@dataclass
class Loop:
    """A span of `period` tokens repeated `repeats` times back to back, from token `start`."""

    start: int
    period: int
    repeats: int

    def describe(self, tokens: Sequence[str]) -> str:
        span = " ".join(tokens[self.start : self.start + self.period]).lower()
        shown = span if len(span) <= 40 else span[:37] + "..."
        return f"{shown!r} repeated {self.repeats}x"


def find_loops(
    token_lists: Sequence[Sequence[str]], repeats: int, max_period: int, min_chars: int
) -> list[Loop | None]:
    """For each token list, its shortest-period loop (the first one), or None; case is ignored.

    All lists are checked together: tokens become integer ids in one array, with a distinct
    negative separator after each list so that no match crosses from one text to the next. For
    each period p, `same[i]` says token i equals token i + p; a loop of k copies is a run of
    (k - 1) * p such positions, found with a running sum.
    """
    found: list[Loop | None] = [None] * len(token_lists)
    longest = max((len(tokens) for tokens in token_lists), default=0)
    if longest < repeats:
        return found
    # Ids are given once per distinct token (its lower-cased form), then looked up at C speed.
    by_lower: dict[str, int] = {}
    code_of = {
        token: by_lower.setdefault(token.lower(), len(by_lower))
        for token in set().union(*token_lists)
    }
    ids: list[int] = []
    widths: list[int] = []
    starts: list[int] = []
    for index, tokens in enumerate(token_lists):
        starts.append(len(ids))
        ids.extend(map(code_of.__getitem__, tokens))
        widths.extend(map(len, tokens))
        ids.append(-1 - index)
        widths.append(0)
    codes = np.asarray(ids, dtype=np.int64)
    # Characters before each token, one space between tokens, for the minimum loop size.
    offsets = np.concatenate(([0], np.cumsum(np.asarray(widths, dtype=np.int64) + 1)))
    first = np.asarray(starts, dtype=np.int64)
    for period in range(1, min(max_period, longest // repeats) + 1):
        run = (repeats - 1) * period
        same = codes[period:] == codes[:-period]
        if same.size < run:
            break
        running = np.concatenate(([0], np.cumsum(same, dtype=np.int64)))
        hits = np.flatnonzero(running[run:] - running[:-run] == run)
        if not hits.size:
            continue
        span_chars = offsets[hits + run + period] - offsets[hits] - 1
        hits = hits[span_chars >= min_chars]
        owners = np.searchsorted(first, hits, side="right") - 1
        for hit, owner in zip(hits.tolist(), owners.tolist(), strict=True):
            if found[owner] is None:
                count = repeats
                while hit + (count + 1) * period <= len(ids) and (
                    ids[hit + count * period : hit + (count + 1) * period]
                    == ids[hit : hit + period]
                ):
                    count += 1
                found[owner] = Loop(hit - starts[owner], period, count)
    return found


class RepetitionFilter(Filter):
    """Reject a pair whose field repeats itself: Gopher fractions or a generation loop."""

    type: ClassVar[str] = "repetition"
    fields: dict[PairField, RepetitionLimits] = Field(
        default_factory=lambda: {"answer": RepetitionLimits()}, min_length=1
    )

    def decide(self, pairs: list[Pair]) -> list[Decision]:
        failures: list[str | None] = [None] * len(pairs)
        for name, limits in self.fields.items():
            # A markdown table's separator row ("|---|---|---|") is markup, not a loop.
            texts = [without_markdown_rules(field_text(pair, name)) for pair in pairs]
            tokens = [tokenize(text) for text in texts]
            if limits.loop_repeats:
                loops = find_loops(
                    tokens, limits.loop_repeats, limits.loop_max_period, limits.loop_min_chars
                )
                for i, loop in enumerate(loops):
                    if loop and failures[i] is None:
                        failures[i] = f"{name} loops: {loop.describe(tokens[i])}"
            for i, (text, words) in enumerate(zip(texts, tokens, strict=True)):
                if failures[i] is None:
                    failure = gopher_failure(text, words, limits)
                    if failure:
                        failures[i] = f"{name} {failure}"
        return [self.reject(f) if f else self.keep() for f in failures]
