"""Grounding's `unsettled: verify`: a number the bounded search cannot settle (and, with
`verify_settled`, every answer number) is checked by a verifier model, whose verdict keeps or
rejects the pair; an unreadable reply or an engine error rejects it, never keeps it unverified."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import curation_cli, shell_escape, write_prompt
from grounding_corpus import load_corpus, tally, verified_by_labels
from pairs import filter_rows, pair_in
from scripted_server import message_text, scripted_server
from test_judge import ScriptedEngine

from curation.config import ConfigError, GenerateConfig, load_recipe
from curation.filters.chain import FilterChain, load_chain
from curation.filters.grounding import GroundingFilter
from curation.filters.verify import Verdict, VerifyReplyError, claim_excerpts, parse_verdict
from curation.run import run_identity
from curation.schema import Pair

ROOT = Path(__file__).resolve().parents[1]
# 1,010 = 412 + 598 lies across two sentences, outside any group the search pairs numbers in:
# right, but unsettled. 280 is Riverside's row: printed, so the page alone settles it for
# Northgate too.
PAGE = """Street lighting report
The depot crews repaired 412 lamps in 2023. Most repairs were on the ring road.
In 2024, after the storm season, the crews repaired 598 lamps.
Lamp repairs by depot in 2024
Depot
Lamps
Orders
Northgate
318
1,204
Riverside
280
1,106"""
TOTAL = (
    "How many lamps did the crews repair over 2023 and 2024?",
    "1,010 lamps over the two years.",
)
NORTHGATE = "How many lamps did Northgate repair in 2024?"
NEIGHBOUR = (NORTHGATE, "280 lamps.")  # Riverside's value: wrong, printed elsewhere
READ = (NORTHGATE, "318 lamps.")
MORE = ("How many more lamps were repaired in 2024 than in 2023?", "186 more lamps.")
VERIFIED = '{"verdict": "verified", "computation": "1,010 = 412 + 598", "reason": "sentences 1, 2"}'


def pair(qa: tuple[str, str], unit: str = "u") -> Pair:
    return pair_in(unit, qa[0], qa[1], pages=[0], texts=[PAGE])


def verifier(replies: list[str | None], **fields) -> tuple[GroundingFilter, ScriptedEngine]:
    grounding = GroundingFilter(unsettled="verify", engine=GenerateConfig(cache=False), **fields)
    engine = ScriptedEngine(replies)
    grounding.use_engine(engine)
    return grounding, engine


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        (VERIFIED, Verdict(True, "1,010 = 412 + 598")),
        (  # fenced, other keys, the reason given where the computation is missing
            '```json\n{"Status": "Supported", "explanation": "412 + 598 = 1,010"}\n```',
            Verdict(True, "412 + 598 = 1,010"),
        ),
        (  # cut off at max_tokens after its verdict
            '{"verdict": "unsupported", "reason": "The page gives 318 for Northg',
            Verdict(False, "The page gives 318 for Northg"),
        ),
        ("Verified: 1,010 = 412 + 598.", Verdict(True, "1,010 = 412 + 598.")),
        ("**Unsupported** - 280 is Riverside's.", Verdict(False, "280 is Riverside's.")),
        ("The number is not verified: no such row.", Verdict(False, "no such row.")),
        ('{"verdict": "verified: 318, Northgate row"}', Verdict(True, "318, Northgate row")),
    ],
)
def test_verifier_replies_are_read_tolerantly(reply, verdict):
    assert parse_verdict(reply) == verdict


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ("", "empty reply"),
        ("Let me add the two years up first.", "no verdict in"),
        ('{"verdict": "verified", "computation": ""}', "verified without a computation"),
        ("Verified.", "verified without a computation"),
    ],
)
def test_unreadable_verifier_replies_raise(reply, problem):
    with pytest.raises(VerifyReplyError, match=problem):
        parse_verdict(reply)


def test_the_verdict_decides_an_unsettled_pair_and_settled_ones_send_nothing():
    grounding, engine = verifier(
        [
            VERIFIED,
            '{"verdict": "unsupported", "reason": "the page gives 412 and 598"}',
            "I think so.",
            None,  # the engine failed
            "Verified: 1,010 = 412 + 698",  # arithmetic that does not hold
        ]
    )
    pairs = [pair(TOTAL, f"u{i}") for i in range(5)] + [pair(READ), pair(NEIGHBOUR)]
    kept, unsupported, unreadable, failed, unsound, read, neighbour = grounding.decide(pairs)
    assert kept.passed and kept.reason == "verified: 1,010 = 412 + 598"
    assert not unsupported.passed
    assert unsupported.reason == "unsupported 1,010: the page gives 412 and 598"
    assert not unreadable.passed
    assert (
        unreadable.reason
        == "1,010 not verified: verifier reply unreadable: no verdict in 'I think so.'"
    )
    assert not failed.passed and failed.reason == "1,010 not verified: engine error: timed out"
    assert not unsound.passed and "the verifier's '1,010 = 412 + 698' gives 1110" in unsound.reason
    # Numbers the page settles are not sent: the read, and the neighbouring row's value.
    assert read.passed and neighbour.passed and len(engine.requests) == 5
    # The prompt shows the page, the pair and the number to check, and asks for a computation.
    user = engine.requests[0].messages[-1]["content"]
    assert "repaired 598 lamps" in user and TOTAL[1] in user
    assert "Number to check: 1,010\nShow the computation or say it is unsupported" in user
    assert engine.requests[0].json_schema["required"] == ["verdict", "computation", "reason"]


def test_verify_settled_sends_the_printed_elsewhere_value_to_the_verifier():
    grounding, engine = verifier(
        [
            "Unsupported: 280 is Riverside's; Northgate repaired 318.",
            "Verified: 318, Northgate row",
        ],
        verify_settled=True,
    )
    neighbour, read = grounding.decide([pair(NEIGHBOUR), pair(READ)])
    assert not neighbour.passed
    assert neighbour.reason == "unsupported 280: 280 is Riverside's; Northgate repaired 318."
    assert read.passed and read.reason == "verified: 318, Northgate row; 318=page"
    assert len(engine.requests) == 2


def test_a_pair_rejected_for_other_reasons_is_not_sent_and_reject_is_the_default():
    grounding, engine = verifier([])
    arithmetic = pair(("How many more?", "186 more (598 - 412 = 196)."))
    (decision,) = grounding.decide([arithmetic])
    assert not decision.passed and "598 - 412 = 196" in decision.reason
    assert engine.requests == []
    default = GroundingFilter()
    assert default.unsettled == "reject"
    (rejected,) = default.decide([pair(TOTAL)])
    assert rejected.reason == "answer number 1010 is not in the pages nor one step from them"


def test_excerpts_are_cut_around_the_claim():
    filler = "".join(f"Line {i} of the minutes says nothing of interest.\n" for i in range(40))
    long_pair = pair_in("u", TOTAL[0], TOTAL[1], pages=[0, 1], texts=[filler + PAGE, PAGE])
    first, second = claim_excerpts(long_pair, ["1,010"], 800)
    assert "repaired 412 lamps in 2023" in first["text"] and "Line 3 " not in first["text"]
    assert second == {"number": 2, "text": PAGE[:400].strip()}


def write_chain(path: Path, grounding: dict) -> Path:
    path.write_text(
        yaml.safe_dump({"name": "verified", "filters": [{"type": "grounding", **grounding}]})
    )
    return path


def test_chain_errors_name_the_field_and_a_refused_prompt_its_file(tmp_path):
    engine = {"engine": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}
    for fields, problem in [
        ({"unsettled": "verify"}, "field 'filters.0.engine': Value error, unsettled: verify needs"),
        ({"verify_settled": True}, "field 'filters.0.engine': Value error, verify_settled needs"),
        ({"unsettled": "verify", "engine": engine, "prompt": "verify/nope"}, "no template"),
    ]:
        with pytest.raises(ConfigError, match=problem):
            FilterChain.load(write_chain(tmp_path / "chain.yaml", fields))
    marker = tmp_path / "ran"
    evil = write_prompt(
        tmp_path / "verify",
        "evil",
        "{% block system %}Check.{% endblock %}\n{% block user %}"
        + shell_escape(marker)
        + "{{ claims }}{% endblock %}\n",
    )
    chain = write_chain(
        tmp_path / "evil.yaml",
        {"unsettled": "verify", "engine": engine, "prompts": str(tmp_path / "verify"),
         "prompt": "verify/evil"},
    )  # fmt: skip
    with pytest.raises(ConfigError, match=f"field 'filters.0.prompt': Value error, {evil}, line 5"):
        FilterChain.load(chain)
    assert not marker.exists()


def test_the_verification_prompt_is_part_of_the_run_identity(tmp_path):
    prompts = tmp_path / "verify"
    write_prompt(
        prompts, "number", (ROOT / "prompts/verify/number.j2").read_text().split("---\n", 2)[2]
    )
    engine = {"engine": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}
    chain = write_chain(
        tmp_path / "chain.yaml", {"unsettled": "verify", "engine": engine, "prompts": str(prompts)}
    )
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(f"name: r\ninputs: ['x/*.pdf']\nfilters: {chain}\n")
    recipe = load_recipe(recipe_path)
    first = run_identity(recipe, chain, ROOT / "prompts" / "docmatix")
    template = prompts / "number.j2"
    template.write_text(template.read_text() + "\nBe strict.\n")
    assert run_identity(recipe, chain, ROOT / "prompts" / "docmatix") != first


def verifier_script(messages: list[dict]) -> str:
    """The FAKE verifier: a reply per number asked about, as a 7B-70B model writes them."""
    text = message_text(messages)
    if "Number to check: 1,010" in text:
        return f"```json\n{VERIFIED}\n```"
    if "Number to check: 280" in text:
        return "Unsupported: 280 is Riverside's; Northgate repaired 318."
    if "Number to check: 318" in text:
        return '{"verdict": "verified", "computation": "318, printed for Northgate in 2024"}'
    return "Let me work through the table step by step first."  # 186: no verdict


def test_verification_end_to_end_with_a_scripted_server(tmp_path):
    """`curation filter` with a verifying grounding whose engine is a scripted OpenAI-compatible
    server (a FAKE standing in for `vllm serve`): the derived total the search cannot settle is
    kept, the neighbouring row's value is rejected as unsupported, the unreadable reply rejects;
    through the chain a run uses, the kept pair's verdict is its `qa_meta.scores` entry, and a
    rerun asks the server nothing (the response cache)."""
    from output_fixtures import page_png

    from curation.output.shards import sample_row
    from curation.schema import Outcome, Page
    from curation.units import unit_row

    pairs = [TOTAL, NEIGHBOUR, READ, MORE]
    source = tmp_path / "pairs.jsonl"
    source.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "unit_id": "u", "question": q, "answer": a, "context": PAGE})
            + "\n"
            for i, (q, a) in enumerate(pairs)
        )
    )
    with scripted_server(verifier_script) as server:
        engine = {"engine": "openai", "model": server.model_id, "base_url": server.base_url,
                  "cache_dir": str(tmp_path / "cache")}  # fmt: skip
        chain = write_chain(
            tmp_path / "chain.yaml",
            {"unsettled": "verify", "verify_settled": True, "engine": engine},
        )
        result = curation_cli(
            "filter", str(source), "--chain", str(chain), "--out", str(tmp_path / "out")
        )
        assert result.exit_code == 0, result.output
        assert len(server.requests) == 4

        kept = [
            r
            for f in (tmp_path / "out" / "data").glob("*.parquet")
            for r in pq.read_table(f).to_pylist()
        ]
        assert [(r["question"], r["answer"]) for r in kept] == [TOTAL, READ]
        rejects = {
            r["answer"]: r["reason"]
            for f in (tmp_path / "out" / "rejects").glob("*.parquet")
            for r in pq.read_table(f).to_pylist()
        }
        assert rejects == {
            NEIGHBOUR[1]: "unsupported 280: 280 is Riverside's; Northgate repaired 318.",
            MORE[1]: "186 not verified: verifier reply unreadable: no verdict in "
            "'Let me work through the table step by step first.'",
        }

        page = Page(doc_id="d", source="lamps.pdf", kind="document", page=0, n_pages=1,
                    text=PAGE, text_source="layer", image=page_png("p1"), width=60, height=80)  # fmt: skip
        unit = unit_row([page], 1)
        outcome = {**unit, "prompt_id": "p", "model": "m", "pairs": [
            {"qa_id": "q0", "question": TOTAL[0], "answer": TOTAL[1], "rationale": None,
             "evidence_pages": [], "question_type": None}]}  # fmt: skip
        [decided] = filter_rows(load_chain(str(chain)), [outcome])
        decided = Outcome.from_row(decided)
        row = sample_row(decided, decided.reply.pairs)
        assert row["qa_meta"][0]["scores"] == [
            {"filter": "grounding", "score": 1.0, "reason": "verified: 1,010 = 412 + 598"}
        ]
        assert len(server.requests) == 4  # the same request again: answered by the cache


@pytest.mark.e2e
def test_the_bundled_model_as_verifier_keeps_a_pair_only_verified(tmp_path):
    """The real bundled SmolLM2-135M verifies the unsettled total with a few tokens: the pair is
    kept with a verified computation, or rejected with a reason; never kept unverified."""
    grounding = GroundingFilter(
        unsettled="verify",
        engine=GenerateConfig(model="bundled", max_tokens=24, temperature=0.0, cache=False),
        max_page_chars=600,
    )
    (decision,) = grounding.decide([pair(TOTAL)])
    if decision.passed:
        assert decision.reason.startswith("verified: ")
    else:
        assert decision.reason.startswith(("1,010 not verified: ", "unsupported 1,010: "))
        assert "engine error" not in decision.reason


def test_with_the_label_verifier_printed_elsewhere_wrong_answers_are_rejected(tmp_path):
    """On the held-out corpus with a scripted verifier answering from the labels (as in `make
    bench-grounding`): `unsettled: verify` keeps the correct answers the search cannot settle,
    but only `verify_settled` sends the wrong values printed elsewhere on the page."""
    answers = [a for a in load_corpus(tmp_path) if a.split == "held_out"]
    unsettled, asked = verified_by_labels(answers, settled=False)
    every, asked_every = verified_by_labels(answers, settled=True)
    assert tally(answers, unsettled)["all"].kept_share >= 0.98
    assert tally(answers, unsettled)["all"].printed_rejected == 0
    figures = tally(answers, every)["all"]
    assert figures.printed and figures.printed_rejected == figures.printed
    assert figures.rejected == figures.wrong and asked < asked_every
