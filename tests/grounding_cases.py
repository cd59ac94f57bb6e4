"""The labeled set of derived-number answers (tests/data/derived_numbers.yaml) as pairs to filter:
each case gives a correct answer and a wrong one (the value moved by 12% to 30%)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pymupdf
import yaml
from pairs import pair_in

from curation.filters.grounding_vocabulary import PageVocabulary
from curation.filters.numbers.quantity import quantities
from curation.ingest.pdf import page_text
from curation.schema import Pair

ROOT = Path(__file__).resolve().parents[1]
LABELED_SET = ROOT / "tests" / "data" / "derived_numbers.yaml"
SAMPLES = ROOT / "data" / "samples"
# Wrong values: the correct one times these factors in turn (each at least 10% off once rounded).
FACTORS = (1.15, 0.85, 1.25, 0.8, 1.12, 0.88, 1.3, 0.75)


@dataclass
class LabeledCase:
    """One question over a unit's pages with its correct and its wrong answer."""

    name: str
    correct: Pair
    wrong: Pair


def render(path: Path, pages: list[str]) -> Path:
    """A born-digital PDF of one text box per page (the tests' generated documents)."""
    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page(width=612, height=792)
        page.insert_textbox(pymupdf.Rect(50, 50, 562, 742), text, fontsize=10)
    doc.save(path, no_new_id=True)
    doc.close()
    return path


def calculate(expression: str) -> float:
    """The value of a case's `calc` (numbers and + - * / only)."""
    return float(eval(compile(ast.parse(expression, mode="eval"), "calc", "eval"), {}, {}))


def load_cases(folder: Path) -> list[LabeledCase]:
    """Every case of the labeled set, generated documents rendered into `folder`."""
    spec = yaml.safe_load(LABELED_SET.read_text())
    paths = {p.name: p for p in SAMPLES.glob("*.pdf")}
    for name, pages in spec["generated"].items():
        paths[name] = render(folder / name, pages)
    texts: dict[str, list[str]] = {}
    for name, path in paths.items():
        with pymupdf.open(path) as doc:
            texts[name] = [page_text(page) for page in doc]
    cases = []
    for index, case in enumerate(spec["cases"]):
        value = calculate(case["calc"])
        correct = case["fmt"].format(value)
        vocabulary = PageVocabulary(pair_of(case, correct, texts).unit)
        assert not vocabulary.on_page(quantities(correct)[0]), (LABELED_SET, index, correct)
        # A wrong value printed on the pages is a lookup grounding cannot tell from a right one:
        # the next factor is taken instead.
        factors = FACTORS[index % len(FACTORS) :] + FACTORS[: index % len(FACTORS)]
        wrongs = (case["fmt"].format(value * f) for f in factors)
        wrong = next(w for w in wrongs if not vocabulary.on_page(quantities(w)[0]))
        shown, moved = quantities(correct)[0].value, quantities(wrong)[0].value
        assert abs(moved - shown) >= 0.1 * abs(shown), (LABELED_SET, index, correct, wrong)
        cases.append(
            LabeledCase(
                f"{index}:{case['doc']}",
                pair_of(case, correct, texts),
                pair_of(case, wrong, texts),
            )
        )
    return cases


def pair_of(case: dict, number: str, texts: dict[str, list[str]]) -> Pair:
    """The case's question and its answer with `number` written in."""
    return pair_in(
        unit_id=f"{case['doc']}:{case['pages']}",
        question=case["q"],
        answer=case["a"].format(n=number),
        pages=case["pages"],
        texts=[texts[case["doc"]][p] for p in case["pages"]],
    )
