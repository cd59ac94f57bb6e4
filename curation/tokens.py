"""Words, numbers and stop words: the text units the rule, grounding and repetition filters count."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import NamedTuple

from breame.data.spelling_constants import BRITISH_ENGLISH_SPELLINGS

# A word is a run of word characters that may hold inner '.', ',' or apostrophes ("3.14",
# "1,250", "don't"); any other non-space character is a token of its own (close to spaCy's
# English tokenizer, which DataTrove's Gopher filter uses).
TOKEN = re.compile(r"\w+(?:[.,'\u2019]\w+)*|[^\w\s]")
WORD = re.compile(r"\w+(?:[.,'\u2019]\w+)*")  # the same words, without the punctuation
NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?|\d*\.\d+")
PLAIN_WORD = re.compile(r"\w+")  # runs of word characters: what dedup and exact keys compare
ALNUM = re.compile(r"\w")

STOPWORD_LIST = """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself nor of off on once only or other our ours ourselves
    out over own same she should so some such than that the their theirs them themselves then
    there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves according
    answer based described document documents mentioned page pages question stated text"""
STOPWORDS = frozenset(STOPWORD_LIST.split())
# Words that change what an answer says without naming anything the page must contain.
POLARITY = frozenset({"yes", "no", "not", "never", "none", "nothing", "neither", "cannot"})

SMALL_NUMBERS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
)
NUMBER_WORDS = {word: str(value) for value, word in enumerate(SMALL_NUMBERS.split())}
# (suffix, replacement) tried in order; the first that leaves 3 letters wins ("used": cutting
# "ed" leaves "us", so the last rule makes it "use").
SUFFIXES = (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("ly", ""), ("s", ""), ("ed", "e"))
# British spellings and their inflections, each to its American form (breame's list of 1,730:
# metres -> meters, organised -> organized, colour -> color, licence -> license), so that a
# page and an answer that spell one word two ways share its stem.
AMERICAN_SPELLING = BRITISH_ENGLISH_SPELLINGS


@lru_cache(maxsize=4096)
def tokenize(text: str) -> tuple[str, ...]:
    """Words, numbers and punctuation marks in reading order (cached: several filters read the
    same question and answer)."""
    return tuple(TOKEN.findall(text))


def normalize_text(text: str) -> str:
    """Only the words, case-folded (NFKC): what two copies of a sentence share whatever their
    case, spacing and punctuation."""
    return " ".join(plain_words(unicodedata.normalize("NFKC", text)))


def plain_words(text: str) -> list[str]:
    """The case-folded runs of word characters of a text."""
    return PLAIN_WORD.findall(text.casefold())


@lru_cache(maxsize=1 << 16)
def normalize_number(token: str) -> str | None:
    """'1,250' and '1250' both give '1250'; '12.50' gives '12.5'; a non-number gives None."""
    token = NUMBER_WORDS.get(token.lower(), token)
    if not NUMBER.fullmatch(token):
        return None
    whole, _, fraction = token.replace(",", "").partition(".")
    whole, fraction = whole.lstrip("0") or "0", fraction.rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


@lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """A crude stem shared by a word's inflections and its British and American spellings:
    pump, pumps, pumped, pumping -> 'pump'; upgrade, upgraded -> 'upgrad'; batteries ->
    'battery'; metres, meters -> 'meter'."""
    word = word.lower().removesuffix("'s").removesuffix("\u2019s")
    word = AMERICAN_SPELLING.get(word, word)
    for suffix, replacement in SUFFIXES:
        left = len(word) - len(suffix) + len(replacement)
        if word.endswith(suffix) and left >= 3 and not (suffix == "s" and word.endswith("ss")):
            word = word[: -len(suffix)] + replacement
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


@lru_cache(maxsize=1 << 16)
def word_class(token: str) -> tuple[str, str]:
    """(value, kind): a normalised number, or the lower-cased token as 'content', 'polarity'
    (yes, no, not...) or 'other' (stop words, punctuation)."""
    lower = token.lower()
    number = normalize_number(lower)
    if number is not None:
        return number, "number"
    if not ALNUM.match(lower) or lower in STOPWORDS or len(lower) < 2:
        return lower, "other"
    return lower, "polarity" if lower in POLARITY else "content"


class TextWords(NamedTuple):
    """The words of a text that the grounding and echo rules compare."""

    content: tuple[str, ...]
    polarity: tuple[str, ...]
    numbers: tuple[str, ...]


@lru_cache(maxsize=4096)
def text_words(text: str) -> TextWords:
    """Content words, polarity words and numbers of a text, in one pass (cached per text)."""
    found: dict[str, list[str]] = {"content": [], "polarity": [], "number": [], "other": []}
    for value, kind in map(word_class, tokenize(text)):
        found[kind].append(value)
    return TextWords(tuple(found["content"]), tuple(found["polarity"]), tuple(found["number"]))


def content_words(text: str, keep_polarity: bool = False) -> list[str]:
    """Lower-cased tokens that carry meaning: not stop words, not punctuation, not numbers."""
    words = text_words(text)
    return [*words.content, *words.polarity] if keep_polarity else list(words.content)


def numbers(text: str) -> list[str]:
    """The numbers in a text, normalised (digits or small number words)."""
    return list(text_words(text).numbers)
