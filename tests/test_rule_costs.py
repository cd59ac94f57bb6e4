"""What the junk rules of issue 29 cost on good pairs: each rule, alone, on the labelled correct
pairs of the realistic run (tests/realistic_run.py, with their units' page text) and on the pairs
a careful reader extracts from the held-out reply corpus (tests/data/replies/heldout, no page
text: the rules that need pages are measured on the realistic pairs only). A rule may not cost
more than 1 point of good pairs kept, against the chain without it (or with its old form).

`pytest -s tests/test_rule_costs.py` prints the table that docs/benchmarks.md reports.
"""

from __future__ import annotations

import json

import pymupdf
import pytest
from pairs import pair_in
from realistic_run import EXPECTED, LIBRARY_UNIT_2, REPLIES, write_documents
from test_reply_corpus import load_split

from curation.filters.base import Filter
from curation.filters.citations import CitationFilter
from curation.filters.dedup import Deduplicator, occurrence_keys, pair_text
from curation.filters.entities import EntityGroundingFilter
from curation.filters.rules import (
    AnswerEchoFilter,
    BoilerplateFilter,
    ReplyLabelFilter,
    UnitDuplicateFilter,
)
from curation.generate.parse import parse_reply
from curation.ingest.pdf import page_text
from curation.schema import Pair

MAX_COST = 0.01  # 1 point of good pairs kept


@pytest.fixture(scope="module")
def realistic(tmp_path_factory) -> list[Pair]:
    """The correct pairs of the realistic run, each with its unit's two pages of text and its
    document's first page and name, as the rules see them in a run (citation markers cleaned
    out first, as the default chain does)."""
    docs = write_documents(tmp_path_factory.mktemp("docs"))
    pages = [[page_text(p) for p in pymupdf.open(d)] for d in docs]
    names = {id(doc): str(path) for doc, path in zip(pages, docs, strict=True)}
    good = {e.question for e in EXPECTED if e.keep}
    citations = CitationFilter()
    pairs = []
    for phrase, reply in REPLIES.items():
        doc, first = next((doc, i) for doc in pages for i in (0, 2) if phrase in doc[i])
        for n, item in enumerate(parse_reply(reply, cut_off=reply is LIBRARY_UNIT_2).pairs):
            if item.question in good:
                pair = pair_in(
                    unit_id=f"{phrase}:{first}",
                    question=item.question,
                    answer=item.answer,
                    qa_id=f"{phrase}#{n}",
                    pages=[first, first + 1],
                    texts=doc[first : first + 2],
                    title_text=doc[0],
                    source=names[id(doc)],
                )
                pairs.append(citations.rewrite(pair))
    assert len(pairs) == len(good)
    return pairs


@pytest.fixture(scope="module")
def heldout() -> list[Pair]:
    """The held-out corpus's pairs, one unit per reply, without page text."""
    return [
        pair_in(
            unit_id=entry["id"],
            question=p["question"],
            answer=p["answer"],
            qa_id=f"{entry['id']}#{n}",
        )
        for entry in load_split("heldout")
        for n, p in enumerate(entry["pairs"])
    ]


def kept_share(rule: Filter, pairs: list[Pair]) -> float:
    return sum(d.passed for d in rule.decide(pairs)) / len(pairs)


def dedup_kept_share(pairs: list[Pair], text) -> float:
    """Kept share of the whole-dataset dedup (exact and MinHash near) on these texts."""
    keys = occurrence_keys([p.qa_id for p in pairs])
    verdicts = Deduplicator().check([text(p) for p in pairs], keys)
    return sum(not v.is_duplicate for v in verdicts) / len(pairs)


# (rule, its form before issue 29 or None for a new rule, needs page text)
RULES = {
    "reply_labels": (ReplyLabelFilter(), None, False),
    "boilerplate": (BoilerplateFilter(), None, False),
    "answer_echo (near-echoes)": (AnswerEchoFilter(), AnswerEchoFilter(near_echoes=False), False),
    "entity_grounding": (EntityGroundingFilter(), None, True),
    "unit_duplicates (labels ignored)": (UnitDuplicateFilter(), None, False),
}


def costs(realistic: list[Pair], heldout: list[Pair]) -> dict:
    """Per rule and set: good pairs kept before and after, in percent."""
    table = {}
    for name, (rule, before, needs_pages) in RULES.items():
        sets = {"realistic": realistic} | ({} if needs_pages else {"heldout": heldout})
        table[name] = {
            where: {
                "pairs": len(pairs),
                "kept_before": round(100 * (kept_share(before, pairs) if before else 1.0), 1),
                "kept_after": round(100 * kept_share(rule, pairs), 1),
            }
            for where, pairs in sets.items()
        }
    table["dedup (labels and numbers ignored)"] = {
        where: {
            "pairs": len(pairs),
            "kept_before": round(100 * dedup_kept_share(pairs, raw_text), 1),
            "kept_after": round(100 * dedup_kept_share(pairs, normal_text), 1),
        }
        for where, pairs in {"realistic": realistic, "heldout": heldout}.items()
    }
    return table


def raw_text(pair: Pair) -> str:
    return f"{pair.question}\n{pair.answer}"


def normal_text(pair: Pair) -> str:
    return pair_text(pair.question, pair.answer)


def test_no_rule_costs_more_than_a_point_of_good_pairs(realistic, heldout):
    table = costs(realistic, heldout)
    print(json.dumps(table, indent=1))
    for rule, sets in table.items():
        for where, row in sets.items():
            assert row["kept_before"] - row["kept_after"] <= 100 * MAX_COST, (rule, where, row)
    # The measurement means something: every rule saw both sets where it can.
    assert all(len(sets) == 2 for rule, sets in table.items() if rule != "entity_grounding")
