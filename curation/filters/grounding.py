"""Grounding: an answer must be supported by the text of the pages it was written from.

This module is the filter (its refusal side, not_answerable pairs, included); what it reads an
answer against (the pages' words, numbers and groups, and which answer words are claims) is
`grounding_vocabulary.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import ClassVar, Literal

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator

from curation.config import ConfigError, GenerateConfig
from curation.filters.base import Filter
from curation.filters.grounding_vocabulary import (
    ARITHMETIC_WORDS,
    PageVocabulary,
    counts_claim,
    listed_counts,
    unitless,
)
from curation.filters.judge import STAND_IN_PAIR
from curation.filters.numbers.derivation import (
    POINTS,
    DerivationSearch,
    asked_operations,
    direction,
)
from curation.filters.numbers.quantity import QUANTITY, quantities
from curation.filters.numbers.written import written_arithmetic
from curation.filters.verify import SHOWN_CHARS, Verdict, Verifier, unsound, verify_messages
from curation.generate.engines.base import Engine
from curation.generate.prompts import PromptLibrary, resolve_prompt_dir
from curation.schema import Decision, Pair
from curation.tokens import content_words, stem

# Operands of a written calculation that need not be on the pages: "x 100", "/ 2", "/ 3".
CONSTANTS = frozenset({*map(float, range(1, 13)), 100.0})
# What a model writes when the pages do not answer a question ("The slides do not state the
# 2024 budget.", "Not mentioned in the document.", "This cannot be determined from the pages.").
REFUSAL_PATTERNS = [
    r"\b(?:does|do|did|is|are|was|were)(?: not|n't)\b[^.]{0,80}?\b(?:state|mention|say|give|"
    r"provide|include|show|specify|contain|list|report|disclose|indicate|answer|cover|name|"
    r"identify|describe|explain|discuss|reveal|record|detail|tell|have)",
    r"\bnot (?:stated|mentioned|given|provided|specified|shown|included|listed|reported|"
    r"disclosed|available|indicated|covered|found)\b",
    r"\b(?:cannot|can't|can not) be (?:determined|answered|found|inferred|known|told)\b",
    r"\bno (?:information|mention|data|details?|indication)\b",
    r"\b(?:unanswerable|not answerable)\b",
]
YES_NO = re.compile(r"^\W*(?:yes|no)\b", re.IGNORECASE)
NEGATIVE = "not_answerable"


@dataclass(frozen=True)
class Unsettled:
    """A pair that waits for the verifier: its word-support score, how its settled numbers were
    supported, and the numbers (as written) the verifier is asked about."""

    score: float
    notes: list[str]
    claims: list[str]


class GroundingFilter(Filter):
    """Reject a pair whose answer the unit's page text does not support, or that cites a page the
    unit does not have.

    Support: at least `min_word_support` of the answer's content words (stop words and yes/no
    left out, plurals and -ed/-ing forms matched) occur in the page text, and every number in the
    answer, up to `max_unsupported_numbers`, is on the pages or one arithmetic step from them
    (`curation.filters.numbers`). Numbers compare at the precision written, with thousands
    separators, currency, %, scales and small number words normalised ("1,250" == "1250",
    "$16.1M" == "16.1 million", "three" == "3"); a number word is a claim only when it is the
    answer's quantity (`counts_claim`: not "one of the depots" nor "over the two years"). A
    calculation written out in the answer that does not hold rejects the pair. The score is the
    share of supported content words; a kept pair's reason says how each number was supported
    ("262=diff(1250,988); 1250=page").

    With `unsettled: verify`, a pair whose numbers the search cannot settle (and that nothing
    else here rejects) goes to the verifier model instead (`curation.filters.verify`): kept as
    "verified: 1,010 = 412 + 598", or rejected as unsupported, unreadable or failed.
    """

    type: ClassVar[str] = "grounding"
    min_word_support: float = Field(0.5, ge=0, le=1)
    max_unsupported_numbers: int = Field(0, ge=0)
    check_evidence_pages: bool = True
    evidence_numbering: Literal["one_based", "zero_based"] = Field(
        "one_based", description="How evidence_pages count: as the prompt shows pages (1, 2...)."
    )
    without_text: Literal["keep", "reject"] = Field(
        "keep", description="What to do with a pair whose unit has no page text to check against."
    )
    derived_numbers: bool = Field(
        True, description="Accept answer numbers one arithmetic step from the pages' numbers."
    )
    check_arithmetic: bool = Field(
        True, description="Reject answers whose written-out calculation does not hold."
    )
    refusal_patterns: list[str] = Field(
        default_factory=lambda: list(REFUSAL_PATTERNS),
        description="Regexes (case-insensitive) an answer that says the pages do not answer the "
        "question matches. A not_answerable pair is checked the other way round: its answer "
        "must be a refusal and its question must ask about a word or number the pages lack. A "
        "refusal to another type of question is kept as not_answerable when the pages lack what "
        "it asks about, and rejected when they hold it.",
    )
    unsettled: Literal["reject", "verify"] = Field(
        "reject",
        description="An answer number the bounded search cannot settle: reject the pair, or "
        "ask the `engine` (verify: it shows the computation or says the number is unsupported, "
        "and its verdict keeps or rejects the pair).",
    )
    verify_settled: bool = Field(
        False,
        description="With unsettled: verify, every answer with a number goes to the verifier, "
        "settled or not: a wrong value printed elsewhere on the page (the neighbouring row, "
        "another year) settles by the page like a right one.",
    )
    engine: GenerateConfig | None = Field(
        None,
        validate_default=True,
        description="The verifier model (unsettled: verify): a generate section, as the judge's.",
    )
    prompts: str = Field("prompts/verify", description="The folder of verification prompts.")
    prompt: str = Field("verify/number", description="The template id (its front matter `id`).")
    max_page_chars: int = Field(
        4000, ge=200, description="Page text shown to the verifier: excerpts around the claim."
    )
    _verifier: Verifier | None = PrivateAttr(None)

    @field_validator("engine")
    @classmethod
    def _verifier_named(cls, engine: GenerateConfig | None, info: ValidationInfo):
        if info.data.get("unsettled") == "verify" and engine is None:
            raise ValueError("unsettled: verify needs an engine (the verifier model)")
        if info.data.get("verify_settled") and info.data.get("unsettled") != "verify":
            raise ValueError("verify_settled needs unsettled: verify")
        return engine

    @field_validator("prompt")
    @classmethod
    def _known_template(cls, prompt: str, info: ValidationInfo) -> str:
        """With unsettled: verify, the template exists and renders once on a stand-in pair: a
        template the sandbox refuses stops the chain from loading, naming its file."""
        if info.data.get("unsettled") != "verify":
            return prompt
        try:
            folder = resolve_prompt_dir(info.data.get("prompts", "prompts/verify"))
            verify_messages(PromptLibrary(folder).named(prompt), STAND_IN_PAIR, ["1,010"], 4000)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return prompt

    @property
    def verifier(self) -> Verifier:
        """What asks the verifier model (built on first use; its engine on its first request)."""
        if self._verifier is None:
            cfg = self.engine or GenerateConfig()
            self._verifier = Verifier(cfg, self.prompts, self.prompt, self.max_page_chars)
        return self._verifier

    def use_engine(self, engine: Engine) -> None:
        """Verify with an engine that is already loaded instead of building one."""
        self.verifier.engine = engine

    @property
    def refusal(self) -> re.Pattern[str]:
        return _refusal_regex(tuple(self.refusal_patterns))

    def refuses(self, pair: Pair) -> bool:
        """The answer says the pages do not answer the question (a yes/no answer does not)."""
        return bool(self.refusal.search(pair.answer)) and not YES_NO.match(pair.answer)

    def decide(self, pairs: list[Pair]) -> list[Decision]:
        vocabularies: dict[str, PageVocabulary] = {}
        decisions: list[Decision | Unsettled] = []
        for pair in pairs:
            if not any(text.strip() for text in pair.unit.texts):
                decisions.append(
                    self.reject("no page text to check the answer against")
                    if self.without_text == "reject"
                    else self.keep()
                )
                continue
            vocabulary = vocabularies.get(pair.unit.unit_id)
            if vocabulary is None:
                vocabulary = vocabularies[pair.unit.unit_id] = PageVocabulary(pair.unit)
            decisions.append(self._decide_one(pair, vocabulary))
        pending = [(i, d) for i, d in enumerate(decisions) if isinstance(d, Unsettled)]
        asked = [(pairs[i], d.claims) for i, d in pending]
        verdicts = self.verifier.verdicts(asked) if pending else []
        verified = {i: self._verified(d, v) for (i, d), v in zip(pending, verdicts, strict=True)}
        return [verified[i] if isinstance(d, Unsettled) else d for i, d in enumerate(decisions)]

    def rewrite(self, pair: Pair) -> Pair:
        """A kept refusal to a question of another type is a not_answerable pair."""
        if pair.question_type != NEGATIVE and self.refuses(pair):
            return replace(pair, question_type=NEGATIVE)
        return pair

    def _decide_negative(self, pair: Pair, vocabulary: PageVocabulary) -> Decision:
        """A not_answerable pair (or a refusal): its answer refuses, and the question asks about
        at least one content word or number the pages do not hold (else it may be answerable)."""
        if not self.refuses(pair):
            return self.reject("not_answerable pair whose answer is not a refusal")
        words = [
            w
            for w in content_words(pair.question)
            if stem(w) not in ARITHMETIC_WORDS and not QUANTITY.fullmatch(w)
        ]
        absent = [w for w in words if not vocabulary.supports(w)]
        absent += [q.label for q in quantities(pair.question) if not vocabulary.on_page(q)]
        asked = len(words) + len(quantities(pair.question))
        if not absent:
            return self.reject(
                "refuses, but the pages hold every word and number the question asks about", 0.0
            )
        return self.keep(
            len(absent) / max(asked, 1), f"absent from the pages: {', '.join(absent[:5])}"
        )

    def _decide_one(self, pair: Pair, vocabulary: PageVocabulary) -> Decision | Unsettled:
        if pair.question_type == NEGATIVE or self.refuses(pair):
            return self._decide_negative(pair, vocabulary)
        if self.check_evidence_pages and pair.evidence_pages:
            shift = 1 if self.evidence_numbering == "one_based" else 0
            missing = [p for p in pair.evidence_pages if p - shift not in pair.unit.pages]
            if missing:
                shown = ", ".join(str(p + shift) for p in pair.unit.pages)
                return self.reject(f"cites page {missing[0]}, not in the unit (pages {shown})")
        words = [
            w
            for w in content_words(pair.answer)
            if stem(w) not in ARITHMETIC_WORDS and not QUANTITY.fullmatch(w)
        ]
        supported = sum(vocabulary.supports(w) for w in words)
        score = supported / len(words) if words else 1.0
        written = written_arithmetic(pair.answer) if self.check_arithmetic else []
        wrong = next((w for w in written if not w.holds), None)
        if wrong is not None:
            shown = ", ".join(f"{v:.4g}" for v in wrong.values)
            return self.reject(
                f"answer arithmetic '{wrong.text}' gives {shown}, not {wrong.result.label}", score
            )
        notes, unsupported = self._support(pair, vocabulary, written)
        too_many = len(unsupported) > self.max_unsupported_numbers
        # Only a pair that nothing else rejects is worth a verifier's request.
        if too_many and (self.unsettled == "reject" or score < self.min_word_support):
            return self.reject(
                f"answer number {unsupported[0]} is not in the pages nor one step from them",
                score,
            )
        if score < self.min_word_support:
            missing_words = [w for w in words if not vocabulary.supports(w)][:3]
            return self.reject(
                f"{score:.0%} of answer words in the pages, under {self.min_word_support:.0%} "
                f"(missing: {', '.join(missing_words)})",
                score,
            )
        claims = [q.text for q in quantities(pair.answer) if too_many and q.label in unsupported]
        if self.verify_settled:
            claims += [q.text for q in quantities(pair.answer) if not q.text.isalpha()]
        if too_many or claims:
            return Unsettled(score, notes, list(dict.fromkeys(claims)))
        return self.keep(score, "; ".join(notes))

    def _verified(self, pending: Unsettled, verdict: Verdict | str) -> Decision:
        """The pair's decision by the verifier's verdict: kept only when it is verified by a
        computation that holds; unsupported, unreadable or failed, it is rejected."""
        checked = ", ".join(pending.claims)
        if isinstance(verdict, str):
            return self.reject(f"{checked} not verified: {verdict}"[:300], pending.score)
        shown = verdict.text[:SHOWN_CHARS] or "no reason given"
        if not verdict.verified:
            return self.reject(f"unsupported {checked}: {shown}", pending.score)
        wrong = unsound(verdict)
        if wrong:
            return self.reject(f"unsupported {checked}: {wrong}", pending.score)
        return self.keep(pending.score, "; ".join([f"verified: {shown}", *pending.notes]))

    def _support(
        self, pair: Pair, vocabulary: PageVocabulary, written: list
    ) -> tuple[list[str], list[str]]:
        """How each answer number is supported ("262=diff(1250,988)"), and those that are not."""
        results = {w.result.label: w for w in written}
        operands = {q.value for w in written for q in w.operands}
        search = None
        notes: dict[str, str] = {}
        unsupported: list[str] = []
        listed = listed_counts(pair.answer)
        for number in quantities(pair.answer):
            if number.label in notes or number.label in unsupported:
                continue
            if vocabulary.on_page(number):
                notes[number.label] = "page"
                continue
            if number.label in results:
                notes[number.label] = f"written({results[number.label].text})"
                continue
            if number.value in operands and number.value in CONSTANTS:
                notes[number.label] = "constant"
                continue
            if not number.percent and number.decimals == 0 and number.value in listed:
                notes[number.label] = "count(listed)"
                continue
            if number.text.isalpha() and not counts_claim(number, pair.answer, pair.question):
                continue  # a number word that is not the answer's quantity
            if self.derived_numbers:
                if search is None:
                    named = [
                        q
                        for text in (pair.question, pair.answer, pair.rationale or "")
                        for q in quantities(text)
                        if vocabulary.on_page(q)
                    ]
                    asked = f"{pair.question} {pair.answer}"
                    topic = {stem(w) for w in content_words(asked)} - ARITHMETIC_WORDS
                    search = DerivationSearch(
                        vocabulary.groups,
                        named,
                        topic,
                        asked_operations(asked),
                        points=bool(POINTS.search(asked)),
                        way=direction(asked),
                    )
                derivation = search.find(number, ratio=unitless(number, pair.answer))
                if derivation is not None:
                    notes[number.label] = derivation.describe()
                    continue
            unsupported.append(number.label)
        return [f"{label}={how}" for label, how in notes.items()], unsupported


@lru_cache(maxsize=16)
def _refusal_regex(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
