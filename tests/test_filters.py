from pathlib import Path

import pytest
from pairs import filter_rows, pair_in

from curation.config import ConfigError
from curation.filters import FilterChain, pair_text
from curation.filters.grounding import GroundingFilter
from curation.filters.rules import (
    AnomalyFilter,
    AnswerEchoFilter,
    LengthFilter,
    UnitDuplicateFilter,
)
from curation.schema import Pair

ROOT = Path(__file__).resolve().parents[1]


def pair(question: str, answer: str, unit: str = "u") -> Pair:
    return pair_in(unit_id=unit, question=question, answer=answer)


@pytest.fixture(scope="module")
def docmatix() -> FilterChain:
    return FilterChain.load(ROOT / "filters" / "docmatix.yaml")


def first_failure(chain: FilterChain, p: Pair):
    decisions = chain.decide([p])[0]
    return next((d for d in decisions if not d.passed), None)


def test_clean_pair_passes_every_rule(docmatix):
    decisions = docmatix.decide([pair("Who chairs the board?", "Elena Marsh chairs it.")])[0]
    assert [d.passed for d in decisions] == [True] * len(docmatix.filters)


@pytest.mark.parametrize(
    ("question", "answer", "rule"),
    [
        ("", "An answer.", "question is empty"),
        ("What is it?", "   ", "answer is empty"),
        ("What is {x}?", "It is x.", "brace_span"),
        ("What is it?", "See [1] for details.", "bracket_span"),
        ("What tag?", "The <b> tag.", "angle_span"),
        ("Which host?", "The host at 192.168.0.1 answers.", "ipv4_address"),
        ("How much?", "It rose 6.4 percent.", "word_dot_word"),
        ("Which example?", "Pipes, e.g. mains.", "word_dot_word"),
        ("What?", "Line one.\n\nLine two", "blank_line"),
        ("When?", "Unanswerable from the text", "unanswerable"),
        ("What?", "Yes. Q2: and more", "qa_marker"),
    ],
)
def test_docmatix_rules_drop_with_reason(docmatix, question, answer, rule):
    failure = first_failure(docmatix, pair(question, answer))
    assert failure is not None
    assert rule in failure.reason


def test_chain_stops_at_first_rejection(docmatix):
    decisions = docmatix.decide([pair("", "")])[0]
    assert len(decisions) == 1 and decisions[0].filter == "non_empty"


def test_unit_duplicates_only_within_a_unit():
    pairs = [
        pair("What is it?", "a"),
        pair("what  is IT?", "b"),
        pair("What is it?", "c", unit="v"),
    ]
    assert [d.passed for d in UnitDuplicateFilter().decide(pairs)] == [True, False, True]


def test_chain_applies_to_outcome_rows(docmatix):
    outcome = {
        "unit_id": "u",
        "pages": [0],
        "texts": ["text"],
        "pairs": [
            {
                "qa_id": "1",
                "question": "Who?",
                "answer": "Ada.",
                "rationale": None,
                "evidence_pages": [],
                "decisions": [],
            },
            {
                "qa_id": "2",
                "question": "How much?",
                "answer": "3.5 m",
                "rationale": None,
                "evidence_pages": [],
                "decisions": [],
            },
        ],
    }
    [outcome] = filter_rows(docmatix, [outcome])
    assert all(d["passed"] for d in outcome["pairs"][0]["decisions"])
    assert not outcome["pairs"][1]["decisions"][-1]["passed"]


def test_bad_chain_names_file_and_field(tmp_path):
    path = tmp_path / "chain.yaml"
    path.write_text("name: c\nfilters:\n  - type: patterns\n    patterns: {bad: '('}\n")
    with pytest.raises(ConfigError, match=r"chain\.yaml: field 'filters\.0\.patterns'"):
        FilterChain.load(path)
    path.write_text("name: c\nfilters:\n  - type: nope\n")
    with pytest.raises(ConfigError, match="'nope' is not one of"):
        FilterChain.load(path)


SHIPPED_CHAINS = sorted((ROOT / "filters").glob("*.yaml")) + sorted(
    (ROOT / "recipes" / "examples").glob("*-chain.yaml")
)


def test_every_shipped_chain_loads_in_the_current_form(caplog):
    """No shipped chain lists its dedup among its filters (the old form, which warns)."""
    for path in SHIPPED_CHAINS:
        assert FilterChain.load(path).filters
    assert caplog.records == []
    assert FilterChain.load(ROOT / "filters" / "default.yaml").dedup.threshold == 0.8
    assert FilterChain.load(ROOT / "filters" / "rated.yaml").dedup is not None  # the base's


OLD_FORM = "name: old\nfilters:\n  - type: non_empty\n  - type: dedup\n    threshold: 0.7\n"


def test_an_old_chain_with_a_dedup_entry_loads_it_as_its_dedup_warning_once(tmp_path, caplog):
    """A chain written when dedup was an entry of `filters:` loads as one with a `dedup:` key:
    the entry is not a filter (it never ran within a batch), and the file is named in one
    deprecation warning however often it is loaded."""
    old = tmp_path / "old.yaml"
    old.write_text(OLD_FORM)
    new = tmp_path / "new.yaml"
    new.write_text("name: old\nfilters:\n  - type: non_empty\ndedup:\n  threshold: 0.7\n")
    for path in (old, new, old):
        chain = FilterChain.load(path)
        assert [f.label for f in chain.filters] == ["non_empty"]
        assert (chain.dedup.label, chain.dedup.threshold) == ("dedup", 0.7)
    (warning,) = caplog.records
    assert warning.levelname == "WARNING"
    assert str(old.resolve()) in warning.getMessage()
    assert "deprecated" in warning.getMessage() and "'dedup:'" in warning.getMessage()


def test_a_chain_dedup_names_its_file_and_field(tmp_path):
    path = tmp_path / "chain.yaml"
    path.write_text("name: c\nfilters: [{type: non_empty}]\ndedup: {threshold: 2}\n")
    with pytest.raises(ConfigError, match=r"chain\.yaml: field 'dedup\.threshold'"):
        FilterChain.load(path)
    path.write_text(OLD_FORM + "dedup: {threshold: 0.9}\n")
    with pytest.raises(ConfigError, match=r"chain\.yaml: field 'dedup': .*more than one dedup"):
        FilterChain.load(path)
    path.write_text("name: c\ndedup: {backend: memory}\n")  # a dedup-only chain
    chain = FilterChain.load(path)
    assert (chain.filters, chain.dedup.backend) == ([], "memory")
    path.write_text("name: c\nfilters: []\n")
    with pytest.raises(ConfigError, match="no filter can run"):
        FilterChain.load(path)


def test_an_extending_chain_keeps_or_replaces_the_base_dedup(tmp_path):
    (tmp_path / "base.yaml").write_text(OLD_FORM)
    outer = tmp_path / "outer.yaml"
    outer.write_text("name: o\nextends: base.yaml\nfilters: [{type: answer_echo}]\n")
    assert FilterChain.load(outer).dedup.threshold == 0.7
    outer.write_text(outer.read_text() + "dedup: {threshold: 0.9}\n")
    chain = FilterChain.load(outer)
    assert [f.label for f in chain.filters] == ["non_empty", "answer_echo"]
    assert chain.dedup.threshold == 0.9


# --- The planted set: good pairs and one pair of each class a filter must catch -------------

PAGE_TEXT = (
    "Riverside Water Utility, annual report 2023. The utility served 48,200 households. "
    "The Northgate pumping station delivered 1,250 megalitres in 2023, up from 1,180 megalitres "
    "in 2022. The board is chaired by Elena Marsh. Average water pressure was 3.5 bar across the "
    "network. The Hollow Creek treatment plant was upgraded with ultraviolet disinfection in "
    "March. Leakage fell to 11.2 percent of supply after 340 old mains were replaced."
)
UNIT_A, UNIT_B = "report:0-1", "copy:0-1"

# (unit, question, answer, the first filter of filters/default.yaml that must reject it)
PLANTED = [
    (UNIT_A, "Who chairs the board of the utility?", "Elena Marsh chairs the board.", None),
    (
        UNIT_A,
        "How much water did the Northgate pumping station deliver in 2023?",
        "It delivered 1250 megalitres in 2023, up from 1,180 megalitres in 2022.",
        None,
    ),
    (UNIT_A, "What was the average water pressure?", "It was 3.5 bar across the network.", None),
    (
        UNIT_A,
        "What upgrade did the Hollow Creek treatment plant receive?",
        "The plant was upgraded with ultraviolet disinfection in March.",
        None,
    ),
    (UNIT_A, "How far did leakage fall?", "Leakage fell to 11.2 percent of supply.", None),
    (
        UNIT_A,
        "What was the pressure in the network?",
        "The pressure was 3.5 bar, the pressure was 3.5 bar, the pressure was 3.5 bar, the "
        "pressure was 3.5 bar.",
        "repetition",
    ),
    (
        UNIT_A,
        "How is the delivered volume computed?",
        "Run df.groupby('station').sum() on the table.",
        "rule_patterns",
    ),
    (UNIT_A, "When was the utility founded?", "Unanswerable from the text.", "unanswerable"),
    (
        UNIT_A,
        "What is the budget for 2024?",
        "The budget for 2024 is 9,800,000 dollars.",
        "grounding",
    ),
    (
        UNIT_A,
        "Who built the treatment plant?",
        "Engineers from Siemens constructed the facility using Swedish granite.",
        "grounding",
    ),
    (UNIT_A, "What is the average water pressure?", "The average water pressure.", "answer_echo"),
    (UNIT_A, "How many litres were lost?", "About 1000000000000 litres.", "anomalies"),
    (
        UNIT_A,
        "Who chairs the board of the utility?",
        "The chair is Elena Marsh.",
        "unit_duplicates",
    ),
    (UNIT_B, "who chairs the board of the  utility?", "Elena Marsh chairs the board", "dedup"),
    (
        UNIT_B,
        "What upgrade did the Hollow Creek treatment plant receive?",
        "The plant was upgraded with ultraviolet disinfection in March 2023.",
        "dedup",
    ),
]


def planted_contexts() -> list[Pair]:
    return [
        pair_in(
            unit_id=unit,
            question=q,
            answer=a,
            pages=[0, 1],
            texts=[PAGE_TEXT[:200], PAGE_TEXT[200:]],
            qa_id=f"p{i:02d}",
        )
        for i, (unit, q, a, _) in enumerate(PLANTED)
    ]


@pytest.fixture(scope="module")
def default_chain() -> FilterChain:
    return FilterChain.load(ROOT / "filters" / "default.yaml")


def decided(chain: FilterChain, pairs: list[Pair]) -> list[list]:
    """Each pair's decisions as a run writes them: the chain's filters, then its dedup over the
    pairs they kept, in order (here the whole dataset is these pairs)."""
    decisions = chain.decide(pairs)
    alive = [k for k, ds in enumerate(decisions) if all(d.passed for d in ds)]
    texts = [pair_text(pairs[k].question, pairs[k].answer) for k in alive]
    verdicts = chain.dedup.deduplicator().check(texts, [pairs[k].qa_id for k in alive])
    for k, verdict in zip(alive, verdicts, strict=True):
        decisions[k].append(chain.dedup.decision(verdict))
    return decisions


def test_default_chain_catches_each_planted_class_and_keeps_good_pairs(default_chain):
    decisions = decided(default_chain, planted_contexts())
    for (_, question, answer, expected), pair_decisions in zip(PLANTED, decisions, strict=True):
        failed = next((d for d in pair_decisions if not d.passed), None)
        got = failed.filter if failed else None
        assert got == expected, (question, answer, failed)
        if failed:
            assert failed.reason


def test_default_chain_names_the_duplicate_it_drops(default_chain):
    reasons = {
        i: next(d.reason for d in ds if not d.passed)
        for i, ds in enumerate(decided(default_chain, planted_contexts()))
        if PLANTED[i][3] == "dedup"
    }
    assert reasons[13].startswith("exact duplicate of p00")
    assert reasons[14].startswith("near duplicate of p03")


def test_judge_without_engine_is_listed_inactive(default_chain):
    assert "judge" in default_chain.inactive
    assert "judge" not in [f.label for f in default_chain.filters]
    assert default_chain.dedup is not None  # needs no engine: stays on, after the filters


@pytest.mark.parametrize(
    "answer",
    [
        "Pi is about 3.14.",
        "Version v1.2 added it.",
        "Pipes, e.g. mains.",
        "It is i.e. a U.S. rule.",
    ],
)
def test_default_rules_let_decimals_versions_and_abbreviations_through(
    docmatix, default_chain, answer
):
    rules = next(f for f in default_chain.filters if f.label == "rule_patterns")
    assert rules.decide([pair("What is it?", answer)])[0].passed
    # Docmatix's own list drops them all as word.word.
    failure = first_failure(docmatix, pair("What is it?", answer))
    assert (failure.filter, failure.reason.split(":")[0]) == (
        "docmatix_patterns",
        "answer has word_dot_word",
    )


@pytest.mark.parametrize(
    ("answer", "rule"),
    [
        ("Call os.path.join here.", "code_dotted_name"),
        ("Edit config.yaml first.", "code_dotted_name"),
        ("Call reset() first.", "code_call"),
        ("Use get(key, 2) then.", "code_call"),
        ("Set max_tokens to 5.", "code_snake_case"),
        ("If a == b it stops.", "code_operator"),
        ("Run `make` first.", "backtick"),
        ("The <b>bold</b> tag.", "html_tag"),
    ],
)
def test_default_rules_catch_code(default_chain, answer, rule):
    rules = next(f for f in default_chain.filters if f.label == "rule_patterns")
    decision = rules.decide([pair("What is it?", answer)])[0]
    assert not decision.passed and rule in decision.reason


def test_default_rules_keep_comparisons_and_plural_parentheses(default_chain):
    rules = next(f for f in default_chain.filters if f.label == "rule_patterns")
    for answer in ("Values < 5 and > 2 pass.", "The pump(s) are at Riverside(RS)."):
        assert rules.decide([pair("What is it?", answer)])[0].passed


def rule_failure(chain: FilterChain, answer: str) -> str | None:
    """The reason rule_patterns rejects an answer for, or None when it passes."""
    rules = next(f for f in chain.filters if f.label == "rule_patterns")
    decision = rules.decide([pair("What is it?", answer)])[0]
    return None if decision.passed else decision.reason


def test_default_rules_let_language_names_through(default_chain):
    for answer in ("It is written in C++ and C++17.", "It uses C# and F#."):
        assert rule_failure(default_chain, answer) is None, answer
    assert "code_operator" in rule_failure(default_chain, "Then i++ runs.")


def test_default_rules_let_one_letter_math_functions_through(default_chain):
    for answer in ("The point c(1, 2) lies on it.", "It is f(a, b) for both."):
        assert rule_failure(default_chain, answer) is None, answer
    for answer in ("Call reset() first.", "Then max(a, b) wins.", "Call os.path.join() now."):
        assert rule_failure(default_chain, answer) is not None, answer


def test_default_rules_tell_quarter_labels_from_qa_markers(default_chain):
    for answer in ("Q3 revenue rose.", "Q3: revenue rose 5%.", "In Q4: costs fell."):
        assert rule_failure(default_chain, answer) is None, answer
    for answer in ("Yes. A2: and more", "Q2: What is the margin?", "It is 5. Q7: more"):
        assert "qa_marker" in rule_failure(default_chain, answer), answer


def test_default_rules_let_latex_through_but_not_templates_or_code(default_chain):
    """LaTeX braces after a command, a sub/superscript or a brace pass; one-letter subscripts
    are not snake_case; template braces, JSON and snake_case names still reject."""
    for answer in ("It is $x^2$.", "It is $\\frac{a}{b}$ or $x^{2}$.", "Sum $a_{ij}$ and $x_1$."):
        assert rule_failure(default_chain, answer) is None, answer
    assert "brace_span" in rule_failure(default_chain, "It is {answer}.")
    assert "brace_span" in rule_failure(default_chain, 'It is {"a": 1}.')
    assert "code_snake_case" in rule_failure(default_chain, "Set foo_bar to 1.")
    assert "code_snake_case" in rule_failure(default_chain, "Split x_train.")


def test_default_rules_let_number_ranges_in_brackets_through(docmatix, default_chain):
    for answer in ("Between [2019, 2020] it rose.", "It lies in [0, 1]."):
        assert rule_failure(default_chain, answer) is None, answer
        assert first_failure(docmatix, pair("What is it?", answer)) is not None
    assert "bracket_span" in rule_failure(default_chain, "Ask [Company name].")


def test_markdown_lists_and_tables_pass_the_default_chain(default_chain):
    """A real model's answer with a bullet list or a small table after a blank line passes the
    whole chain; two paragraphs still reject (blank_line)."""
    texts = [PAGE_TEXT]
    answers = [
        "Two stations:\n\n- Northgate delivered 1,250 megalitres.\n- Leakage fell to 11.2 percent.",
        "The figures:\n\n| Measure | Value in 2023 reported |\n|---------|------------------------|\n"
        "| Northgate delivery | 1,250 megalitres |\n| Average pressure | 3.5 bar |",
    ]
    for answer in answers:
        p = pair_in(unit_id="u", question="What were the figures?", answer=answer, texts=texts)
        assert first_failure(default_chain, p) is None, answer
    assert "blank_line" in rule_failure(default_chain, "Line one.\n\nLine two.")


def grounded(answer: str, **kwargs) -> Pair:
    return pair_in(
        unit_id="u", question="Q?", answer=answer, pages=[0, 1], texts=[PAGE_TEXT], **kwargs
    )


def test_grounding_normalises_numbers_and_word_forms():
    grounding = GroundingFilter()
    for answer in (
        "1250 megalitres were delivered.",
        "It served 48200 households.",
        "The utility replaced 340 old mains.",
        "The stations pumped 1,250.0 megalitres.",
    ):
        assert grounding.decide([grounded(answer)])[0].passed, answer


def test_grounding_rejects_unsupported_numbers_and_words_with_a_score():
    grounding = GroundingFilter()
    number, words = grounding.decide(
        [grounded("It delivered 1,350 megalitres."), grounded("Siemens engineers built it.")]
    )
    assert not number.passed and "1350" in number.reason
    assert not words.passed and words.score is not None and words.score < 0.5
    assert (
        GroundingFilter(max_unsupported_numbers=1)
        .decide([grounded("It delivered 1,350 megalitres.")])[0]
        .passed
    )


def test_grounding_checks_cited_pages():
    grounding = GroundingFilter()
    ok, missing = grounding.decide(
        [
            grounded("Elena Marsh chairs it.", evidence_pages=[2]),
            grounded("Elena Marsh chairs it.", evidence_pages=[3]),
        ]
    )
    assert ok.passed
    assert not missing.passed and "cites page 3" in missing.reason


def test_grounding_without_page_text_is_configurable():
    bare = pair("Who?", "Elena Marsh.")
    assert GroundingFilter().decide([bare])[0].passed
    assert not GroundingFilter(without_text="reject").decide([bare])[0].passed


def test_answer_echo():
    echo = AnswerEchoFilter()
    verdicts = echo.decide(
        [
            pair("What is the capacity of the reservoir?", "The capacity of the reservoir."),
            pair("What is the capacity of the reservoir?", "The reservoir holds 40 ML."),
            pair("Is the pump in Riverside?", "Yes."),
            pair("Is the pump in Riverside?", "The pump is not in Riverside."),
        ]
    )
    assert [v.passed for v in verdicts] == [False, True, True, True]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("It cost 50000000000 dollars.", "zeros"),
        ("Wait!!!!!!!!!!!!!!!!", "run of"),
        (" ".join(["word"] * 130) + ".", "sentence of 130 words"),
        ("Line one\nLine two\nLine one\nLine one", "duplicate lines"),
    ],
)
def test_anomaly_rules(answer, reason):
    decision = AnomalyFilter().decide([pair("What?", answer)])[0]
    assert not decision.passed and reason in decision.reason


def test_anomaly_rules_keep_ordinary_answers():
    answers = ["It cost 5,000,000 dollars.", "Three lines\nof text\nin all.", PAGE_TEXT]
    assert all(d.passed for d in AnomalyFilter().decide([pair("What?", a) for a in answers]))


def test_length_limits_per_field():
    length = LengthFilter(
        fields={
            "question": {"min_chars": 5, "max_words": 10},
            "answer": {"min_chars": 2, "max_chars": 20},
            "rationale": {"min_chars": 5, "optional": True},
        }
    )
    verdicts = length.decide(
        [
            pair("Who is it?", "Ada"),
            pair("Who?", "Ada"),
            pair("Who is it?", "A"),
            pair("Who is it?", "Ada Lovelace, the first programmer"),
            pair("Who " + "is it really " * 5 + "?", "Ada"),
            pair_in("u", "Who is it?", "Ada", rationale="No."),
        ]
    )
    assert [v.passed for v in verdicts] == [True, False, False, False, False, False]
    assert verdicts[1].reason == "question has 4 chars, under 5"
    assert "over 20" in verdicts[3].reason


def test_internvl_chain_catches_loops_and_anomalies():
    chain = FilterChain.load(ROOT / "filters" / "internvl.yaml")
    assert chain.inactive == ["judge"]
    contexts = planted_contexts()
    verdicts = {
        PLANTED[i][3]: next((d.filter for d in ds if not d.passed), None)
        for i, ds in enumerate(chain.decide(contexts))
        if PLANTED[i][3] in ("repetition", "anomalies", None)
    }
    assert verdicts == {"repetition": "repetition", "anomalies": "anomalies", None: None}


def test_judge_engine_errors_name_the_chain_field(tmp_path):
    path = tmp_path / "chain.yaml"
    path.write_text(
        "name: c\nfilters:\n  - type: non_empty\n  - type: judge\n    engine: {modle: bundled}\n"
    )
    with pytest.raises(ConfigError, match=r"chain\.yaml: field 'filters\.1\.engine\.modle'"):
        FilterChain.load(path)
    path.write_text("name: c\nfilters:\n  - type: judge\n    prompt: judge/nope\n")
    with pytest.raises(ConfigError, match=r"field 'filters\.0\.prompt'.*no template 'judge/nope'"):
        FilterChain.load(path)
