"""Grounding: an answer must be supported by the text of the pages it was written from."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from curation.filters.base import Filter, PairContext
from curation.filters.tokens import WORD, content_words, normalize_number, numbers, stem
from curation.schema import Decision


class PageVocabulary:
    """The word stems and normalised numbers of a unit's pages (plus the page numbers shown)."""

    def __init__(self, pair: PairContext) -> None:
        text = "\n".join(pair.texts)
        tokens = set(WORD.findall(text))
        self.words = set(map(stem, tokens))
        self.numbers = {n for n in map(normalize_number, tokens) if n is not None}
        # Page labels the model saw ("--- Page 3 ---") support an answer that cites them.
        self.numbers.update(str(page + 1) for page in pair.pages)

    def supports(self, word: str) -> bool:
        return stem(word) in self.words


class GroundingFilter(Filter):
    """Reject a pair whose answer the unit's page text does not support, or that cites a page the
    unit does not have.

    Support: at least `min_word_support` of the answer's content words (stop words and yes/no
    left out, plurals and -ed/-ing forms matched) occur in the page text, and every number in the
    answer occurs there after normalisation ("1,250" == "1250", "12.50" == "12.5", "three" ==
    "3"), up to `max_unsupported_numbers`. The score is the share of supported content words.
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

    def decide(self, pairs: list[PairContext]) -> list[Decision]:
        vocabularies: dict[str, PageVocabulary] = {}
        decisions = []
        for pair in pairs:
            if not any(text.strip() for text in pair.texts):
                decisions.append(
                    self.reject("no page text to check the answer against")
                    if self.without_text == "reject"
                    else self.keep()
                )
                continue
            vocabulary = vocabularies.get(pair.unit_id)
            if vocabulary is None:
                vocabulary = vocabularies[pair.unit_id] = PageVocabulary(pair)
            decisions.append(self._decide_one(pair, vocabulary))
        return decisions

    def _decide_one(self, pair: PairContext, vocabulary: PageVocabulary) -> Decision:
        if self.check_evidence_pages and pair.evidence_pages:
            shift = 1 if self.evidence_numbering == "one_based" else 0
            missing = [p for p in pair.evidence_pages if p - shift not in pair.pages]
            if missing:
                shown = ", ".join(str(p + shift) for p in pair.pages)
                return self.reject(f"cites page {missing[0]}, not in the unit (pages {shown})")
        words = content_words(pair.answer)
        supported = sum(vocabulary.supports(w) for w in words)
        score = supported / len(words) if words else 1.0
        unsupported = [n for n in numbers(pair.answer) if n not in vocabulary.numbers]
        if len(unsupported) > self.max_unsupported_numbers:
            return self.reject(f"answer number {unsupported[0]} is not in the pages", score)
        if score < self.min_word_support:
            missing_words = [w for w in words if not vocabulary.supports(w)][:3]
            return self.reject(
                f"{score:.0%} of answer words in the pages, under {self.min_word_support:.0%} "
                f"(missing: {', '.join(missing_words)})",
                score,
            )
        return self.keep(score)
