"""The labelled grounding corpus (tests/data/grounding_corpus.yaml, issue 28) expanded into answers.

Each case is one question with a correct value; it expands into one answer per phrasing of its
operation (PHRASINGS, the words 7B-70B instruction models wrap a number in), one per extra
number format (currency and scale restatements), and wrong answers: the value moved by >= 5%,
two digits transposed, the neighbouring row's value, another year's. A wrong answer whose value is
printed on the pages is tagged `printed_elsewhere`: the page alone cannot tell it from a right
one. Cases split 70/30 by a stable hash of their id (`split`), fixed before any tuning: the
held-out 30% is only ever evaluated.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import pymupdf
import yaml
from grounding_cases import calculate, render
from pairs import pair_in

from curation.config import GenerateConfig
from curation.filters.grounding import GroundingFilter
from curation.filters.grounding_vocabulary import PageVocabulary
from curation.filters.numbers.quantity import quantities
from curation.generate.engines.base import ChatRequest, Engine, EngineResult
from curation.ingest.pdf import page_text
from curation.schema import Pair

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "grounding_corpus.yaml"
HELD_OUT_SHARE = 3  # of 10: cases whose id hashes to 0-2 are held out
# Wrong values: the correct one times one of these (each case starts at its own), kept only when
# the written value moved by at least MIN_MOVE.
FACTORS = (1.06, 0.94, 1.08, 0.92, 1.12, 0.88, 1.2, 0.8, 1.3, 0.7)
MIN_MOVE = 0.05
# Answer templates by operation: {n} is the number as formatted; the other fields come from the
# case, and a phrasing whose field the case lacks is skipped.
PHRASINGS: dict[str, dict[str, str]] = {
    "sum": {
        "plain": "{n} {what}.",
        "together": "Together they come to {n} {what}.",
        "combined": "Combined, that is {n} {what}.",
        "altogether": "Altogether there were {n} {what}.",
        "a_total_of": "A total of {n} {what}.",
        "over_span": "{n} {what} over {span}.",
        "across_span": "In total, {n} {what} across {span}.",
    },
    "diff": {
        "plain": "{n} {what}.",
        "difference": "The difference is {n} {what}.",
        "verb_by": "It {verb} by {n}.",
        "over_span": "Over {span}, it {verb} by {n}.",
    },
    "ratio": {
        "plain": "{n}.",
        "about": "About {n} {what}.",
        "ratio_is": "The ratio is {n}.",
        "roughly_times": "Roughly {n} times.",
    },
    "pct": {
        "plain": "{n} {what}.",
        "accounts_for": "{a} accounts for {n} of the total.",
        "about": "About {n} {what}.",
        "percent_word": "{n_word} {what}.",
    },
    "pct_change": {
        "plain": "{n}.",
        "verb_by": "It {verb} by {n}.",
        "change_of": "A change of {n} {what}.",
        "over_span": "Over {span} it {verb} by {n}.",
        "percent_word": "{verb_cap} by {n_word}.",
    },
    "avg": {
        "plain": "{n} {what}.",
        "on_average": "On average, {n} {what}.",
        "per": "{n} {what} per {per}.",
        "a_per": "About {n} {what} a {per}.",
        "over_span": "An average of {n} {what} over {span}.",
    },
    "read": {
        "plain": "{n} {what}.",
        "it_was": "It was {n} {what}.",
        "one_of": "{a}, one of the {group}, had {n} {what}.",
        "according": "According to the report, {n} {what}.",
    },
}


@dataclass(frozen=True)
class CorpusAnswer:
    """One labelled answer: its pair, and the tags the benchmark reports by."""

    id: str
    case: str
    split: str  # train | held_out
    doc_kind: str  # financial | scientific | prose | slides
    op: str  # read | sum | diff | ratio | pct | pct_change | avg (sum_all/avg_all: whole group)
    phrasing: str
    correct: bool
    wrong_kind: str | None  # moved | transposed | neighbour | year
    printed_elsewhere: bool  # a wrong value printed on the pages
    pair: Pair


def split_of(case_id: str) -> str:
    """The case's split, by a stable hash of its id (the same on every machine and run)."""
    digest = int(hashlib.sha256(case_id.encode()).hexdigest(), 16)
    return "held_out" if digest % 10 < HELD_OUT_SHARE else "train"


def format_value(fmt: str, value: float) -> str:
    """`fmt` with an optional "|x" tail that multiplies the value first ("{:.0f}k|0.001")."""
    template, _, factor = fmt.partition("|")
    return template.format(value * float(factor or 1))


def transposed(number: str) -> str | None:
    """The number with its first pair of unequal neighbouring digits swapped (no leading 0)."""
    spots = [i for i, c in enumerate(number) if c.isdigit()]
    for left, right in itertools.pairwise(spots):
        a, b = number[left], number[right]
        if a != b and not (left == spots[0] and b == "0"):
            chars = list(number)
            chars[left], chars[right] = b, a
            return "".join(chars)
    return None


def load_corpus(folder: Path) -> list[CorpusAnswer]:
    """Every answer of the corpus, its documents rendered to PDFs in `folder` and read back."""
    spec = yaml.safe_load(CORPUS.read_text())
    texts: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for name, doc in spec["documents"].items():
        path = render(folder / f"{name}.pdf", doc["pages"])
        with pymupdf.open(path) as pdf:
            texts[name] = [page_text(page) for page in pdf]
        kinds[name] = doc["kind"]
    answers: list[CorpusAnswer] = []
    for index, case in enumerate(spec["cases"]):
        answers += expand(case, index, texts[case["doc"]], kinds[case["doc"]])
    return answers


def expand(case: dict, index: int, pages: list[str], kind: str) -> list[CorpusAnswer]:
    fmts = case["fmt"] if isinstance(case["fmt"], list) else [case["fmt"]]
    op = case["op"] + ("_all" if case.get("whole") else "")
    fields = {k: v for k, v in case.items() if isinstance(v, str)}
    if "verb" in fields:
        fields["verb_cap"] = fields["verb"][0].upper() + fields["verb"][1:]
    templates = {}
    for name, template in PHRASINGS[case["op"]].items():
        needed = set(re.findall(r"\{(\w+)\}", template)) - {"n", "n_word"}
        if needed <= fields.keys():
            templates[name] = template
    value = calculate(case["calc"])

    def pair(number: str, template: str) -> Pair:
        text = template.format(n=number, n_word=number.replace("%", " percent"), **fields)
        text = text[0].upper() + text[1:]
        return pair_in(
            unit_id=case["doc"], question=case["q"], answer=text,
            pages=list(range(len(pages))), texts=pages,
        )  # fmt: skip

    vocabulary = PageVocabulary(pair("0", "{n}").unit)

    def printed(number: str) -> bool:
        return vocabulary.on_page(quantities(number)[0])

    split = split_of(case["id"])
    out: list[CorpusAnswer] = []

    def add(phrasing: str, number: str, template: str, wrong: str | None = None) -> None:
        out.append(
            CorpusAnswer(
                id=f"{case['id']}/{wrong or 'correct'}/{phrasing}",
                case=case["id"], split=split, doc_kind=kind, op=op, phrasing=phrasing,
                correct=wrong is None, wrong_kind=wrong,
                printed_elsewhere=wrong is not None and printed(number),
                pair=pair(number, template),
            )
        )  # fmt: skip

    correct = format_value(fmts[0], value)
    for name, template in templates.items():
        if "n_word" in template and "%" not in correct:
            continue
        add(name, correct, template)
    for fmt in fmts[1:]:
        add("scale_restated", format_value(fmt, value), templates["plain"])
    # Wrong answers, each in the next phrasing of the case's own (the plain one last).
    names = [n for n in templates if n != "plain" and "n_word" not in templates[n]] + ["plain"]
    wrongs: list[tuple[str, str]] = []
    shown = quantities(correct)[0].value
    for step in range(len(FACTORS)):
        moved = format_value(fmts[0], value * FACTORS[(index + step) % len(FACTORS)])
        if abs(quantities(moved)[0].value - shown) >= MIN_MOVE * abs(shown):
            wrongs.append(("moved", moved))
            break
    swapped = transposed(correct)
    if swapped and quantities(swapped)[0].value != shown:
        wrongs.append(("transposed", swapped))
    for key in ("neighbour", "year"):
        if key in case:
            other = format_value(fmts[0], calculate(case[key]))
            if quantities(other)[0].value != shown:
                wrongs.append((key, other))
    for step, (wrong_kind, number) in enumerate(wrongs):
        name = names[(index + step) % len(names)]
        add(name, number, templates[name], wrong_kind)
    return out


@dataclass
class Tally:
    """Kept correct answers and rejected wrong ones (printed-elsewhere wrong ones apart)."""

    kept: int = 0
    correct: int = 0
    rejected: int = 0
    wrong: int = 0
    printed_rejected: int = 0
    printed: int = 0

    def add(self, answer: CorpusAnswer, passed: bool) -> None:
        if answer.correct:
            self.correct += 1
            self.kept += passed
        elif answer.printed_elsewhere:
            self.printed += 1
            self.printed_rejected += not passed
        else:
            self.wrong += 1
            self.rejected += not passed

    @property
    def kept_share(self) -> float:
        return self.kept / self.correct if self.correct else 1.0

    @property
    def rejected_share(self) -> float:
        return self.rejected / self.wrong if self.wrong else 1.0

    def cells(self) -> list[str]:
        def cell(n: int, d: int) -> str:
            return f"{n}/{d} ({n / d:.1%})" if d else "-"

        return [
            cell(self.kept, self.correct),
            cell(self.rejected, self.wrong),
            cell(self.printed_rejected, self.printed),
        ]


def tally(answers: list[CorpusAnswer], passed: list[bool], key=None) -> dict[str, Tally]:
    """Tallies by `key` (an answer -> label function; one "all" tally without)."""
    out: dict[str, Tally] = {}
    for answer, ok in zip(answers, passed, strict=True):
        out.setdefault(key(answer) if key else "all", Tally()).add(answer, ok)
    return dict(sorted(out.items()))


def fenced(text: str, label: str) -> str:
    """The data a prompt shows fenced under `label` ("Question:", "Answer:")."""
    after = text.split(f"\n{label}\n", 1)[1]
    fence, _, rest = after.partition("\n")
    return rest.split(f"\n{fence}", 1)[0]


class LabelVerifier(Engine):
    """A scripted verifier that answers from the corpus labels, as a perfect reader would:
    verified for a correct answer, unsupported for a wrong one. What it measures is which
    answers grounding sends to the verifier, not a model."""

    model_name = "corpus-labels"

    def __init__(self, answers: list[CorpusAnswer]) -> None:
        self.labels = {(a.pair.question, a.pair.answer): a.correct for a in answers}
        self.asked = 0

    def generate(self, requests: list[ChatRequest]) -> list[EngineResult]:
        results = []
        for request in requests:
            self.asked += 1
            user = str(request.messages[-1]["content"])
            correct = self.labels[(fenced(user, "Question:"), fenced(user, "Answer:"))]
            reply = (
                "Verified: as the label says." if correct else "Unsupported: wrong by its label."
            )
            results.append(EngineResult(request.request_id, reply, "stop"))
        return results


def verified_by_labels(answers: list[CorpusAnswer], settled: bool) -> tuple[list[bool], int]:
    """Each answer's outcome with `unsettled: verify` (and `verify_settled`) and the label
    verifier, and how many answers were sent to it."""
    grounding = GroundingFilter(
        unsettled="verify", verify_settled=settled, engine=GenerateConfig(cache=False)
    )
    verifier = LabelVerifier(answers)
    grounding.use_engine(verifier)
    passed = [d.passed for d in grounding.decide([a.pair for a in answers])]
    return passed, verifier.asked
