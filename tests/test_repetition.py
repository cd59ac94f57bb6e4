import pytest
from pairs import pair_in

from curation.filters.repetition import (
    Loop,
    RepetitionFilter,
    RepetitionLimits,
    find_loops,
    gopher_failure,
)
from curation.tokens import tokenize

PROSE = (
    "The Northgate pumping station delivered 1,250 megalitres in 2023, up from 1,180 megalitres "
    "in 2022. The board is chaired by Elena Marsh, who joined in 2019 after a decade at the "
    "regional water authority. Average pressure was 3.5 bar across the network, and leakage "
    "fell to 11.2 percent of supply after 340 old mains were replaced with polyethylene pipes."
)


def failure(text: str, **limits) -> str | None:
    return gopher_failure(text, tokenize(text), RepetitionLimits(**limits))


def test_clean_prose_passes_every_gopher_metric():
    assert failure(PROSE) is None


def test_duplicate_lines_and_paragraphs():
    lines = "\n".join(["Total output rose."] * 3 + ["Costs fell.", "Staff grew."])
    assert failure(lines).startswith("dup_line_frac 0.40 > 0.3")
    paragraphs = "\n\n".join(["The pumps were replaced in March."] * 2 + [PROSE])
    assert failure(paragraphs).startswith("dup_para_frac 0.33 > 0.3")


def test_top_ngram_fraction_counts_the_most_frequent_ngram():
    text = "solar panels " * 3 + "cut costs at the plant by a third over two years in total"
    assert failure(text).startswith("top_2_gram")


def test_duplicated_ngrams():
    sentence = "the reservoir at Hollow Creek holds forty megalitres of treated water"
    text = f"{PROSE[:150]} {sentence}. {sentence}."
    assert failure(text).startswith("duplicated_5_n_grams")


def test_short_fields_need_their_own_limits():
    # A short answer's first 2-gram covers a fifth of it without any repetition (Gopher as is);
    # counting only repeated n-grams, or skipping short texts, keeps it.
    answer = "Elena Marsh chairs the board."
    assert failure(answer).startswith("top_2_gram")
    assert failure(answer, top_ngram_min_count=2) is None
    assert failure(answer, min_words=30) is None


@pytest.mark.parametrize(
    "text",
    [
        "The pump, the pump, the pump, the pump.",
        "It rose by 5 percent. It rose by 5 percent. It rose by 5 percent.",
        "Answer: " + "yes " * 12,
    ],
)
def test_loops_are_found(text):
    (loop,) = find_loops([tokenize(text)], repeats=3, max_period=40, min_chars=12)
    assert loop is not None and loop.repeats >= 3


def test_loop_needs_k_copies_and_enough_characters():
    two = tokenize("It rose by 5 percent. It rose by 5 percent.")
    short = tokenize("No, no, no.")
    assert find_loops([two, short], repeats=3, max_period=40, min_chars=12) == [None, None]
    assert find_loops([two], repeats=2, max_period=40, min_chars=12) == [Loop(0, 6, 2)]


def test_loops_do_not_cross_from_one_text_to_the_next():
    texts = [tokenize("costs fell sharply"), tokenize("costs fell sharply costs fell sharply")]
    assert find_loops(texts, repeats=3, max_period=40, min_chars=5) == [None, None]


def test_loop_reports_where_and_what():
    tokens = tokenize("In short: the valve is open the valve is open the valve is open.")
    (loop,) = find_loops([tokens], repeats=3, max_period=40, min_chars=12)
    assert (loop.start, loop.period, loop.repeats) == (3, 4, 3)
    assert loop.describe(tokens) == "'the valve is open' repeated 3x"


def test_filter_checks_each_field_with_its_limits():
    flt = RepetitionFilter(
        fields={
            "question": {"min_words": 30, "loop_repeats": None},
            "answer": {"min_words": 30, "top_ngram_min_count": 2},
        }
    )
    pairs = [
        pair_in("u", "What rose?", "Costs rose by 5 percent in 2023."),
        pair_in("u", "What rose?", "Costs rose, costs rose, costs rose, costs rose."),
        pair_in("u", "Why? Why? Why? Why? Why? Why? Why?", "Because costs rose."),
        pair_in("u", "What happened?", PROSE + "\n\n" + PROSE),
    ]
    verdicts = flt.decide(pairs)
    assert [v.passed for v in verdicts] == [True, False, True, False]
    assert verdicts[1].reason == "answer loops: 'costs rose ,' repeated 3x"
    assert verdicts[3].reason.startswith("answer dup_para_frac")


def test_agrees_with_datatrove_given_the_same_words():
    """Where the definitions match (same words), every verdict equals DataTrove's. DataTrove is
    a dev dependency (`make setup` installs it); its spaCy tokenizer is not needed here."""
    from datatrove.data import Document
    from datatrove.pipeline.filters.gopher_repetition_filter import GopherRepetitionFilter
    from datatrove.utils.word_tokenizers import WordTokenizer

    class SameWords(WordTokenizer):
        def word_tokenize(self, text):
            return tokenize(text)

        def sent_tokenize(self, text):
            return [text]

        def span_tokenize(self, text):
            return [(0, len(text))]

    reference = GopherRepetitionFilter(language=SameWords())
    texts = [
        PROSE,
        "Elena Marsh chairs the board.",
        "solar panels " * 3 + "cut costs",
        f"{PROSE} {PROSE[:120]}",
        "\n".join(["Total output rose."] * 3 + ["Costs fell."]),
        "The pump, the pump, the pump, the pump.",
    ]
    for text in texts:
        theirs = reference.filter(Document(text=text, id="x"))
        ours = failure(text)
        assert (theirs is True) == (ours is None), (text, theirs, ours)
        if ours is not None:
            assert ours.startswith(theirs[1])
