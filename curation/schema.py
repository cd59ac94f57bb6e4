"""Record types passed between stages and their Arrow schemas / HF Features (the data contracts)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cache
from typing import TYPE_CHECKING, TypeVar

import pyarrow as pa

if TYPE_CHECKING:
    from collections.abc import Iterable

    from datasets import Features


@dataclass
class Page:
    """One page of a source document, with its text and rendered image."""

    doc_id: str
    source: str
    kind: str  # document | slides | images
    page: int  # 0-based
    n_pages: int
    text: str
    text_source: str  # layer | ocr | none | pending_ocr (OCR will fill the text)
    image: bytes
    width: int
    height: int
    ocr_score: float | None = None
    # The page rendered for OCR at ingest.ocr_dpi, when that differs from dpi and the page needs
    # OCR; None: OCR reads `image`. Carried to the OCR stage only (OCR_UNIT_SCHEMA).
    ocr_image: bytes | None = None


@dataclass
class Decision:
    """One filter's verdict on one question-answer pair."""

    filter: str
    passed: bool
    score: float | None = None
    reason: str = ""
    # A judge's ratings on named axes (1-5 each), when its prompt rates axes.
    ratings: list[dict] = field(default_factory=list)  # [{"axis": "relevance", "score": 4.0}]


D = TypeVar("D", Decision, dict)  # a decision as a record or as its row


def first_failure(decisions: Iterable[D] | None) -> D | None:
    """The decision that rejected a pair: its first failed one (the filter its reject names), or
    None when it passed them all (kept). Decisions as records or as their rows (the journal
    counts its rows)."""
    for decision in decisions or ():
        if not (decision.passed if isinstance(decision, Decision) else decision["passed"]):
            return decision
    return None


@dataclass
class Unit:
    """Consecutive pages of one document (a window), or, with `error_code` set and no pages, a
    document that could not be ingested. One UNIT_SCHEMA row (`row`)."""

    unit_id: str
    doc_id: str
    source: str
    kind: str  # document | slides | images
    doc_pages: int  # pages read from the document
    doc_units: int  # units the document yields in total
    pages: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    text_sources: list[str] = field(default_factory=list)
    ocr_scores: list[float | None] = field(default_factory=list)
    images: list[bytes] = field(default_factory=list)
    error_code: str | None = None
    error: str | None = None
    layout: str = "window"  # window | page | document (units.layout)
    # Per page: the earlier page ("doc_id:page", 0-based) whose image and text it repeats (page
    # dedup across documents), or None.
    page_dups: list[str | None] = field(default_factory=list)
    # Why the unit gets no LLM call (e.g. every page repeats an earlier one); None: generate.
    skipped: str | None = None
    # The start of the document's first page's text (its title and owner, which a later unit's
    # pages may not print), for the filters that check names; "" until a first page has text.
    title_text: str = ""

    def row(self) -> dict:
        return dict(vars(self))

    @classmethod
    def from_row(cls, row: dict) -> Unit:
        """The Unit of a Unit (or Outcome) row; the row's other fields are not the unit's."""
        return cls(**{name: row[name] for name in UNIT_NAMES if name in row})


def wants_reply(unit: dict) -> bool:
    """Whether a Unit row gets an LLM call: not an ingest error row, nor a unit skipped before
    generation (`skipped` says why: every page repeats an earlier one, ...)."""
    return unit["error_code"] is None and not unit.get("skipped")


@dataclass
class UnitContext:
    """What a filter reads a pair against: the unit it was generated from (its pages' numbers,
    texts and images, its kind), the start of the document's first page's text and the
    document's source (they hold the title and owner a later unit's pages need not print)."""

    unit_id: str = ""
    kind: str = "document"  # document | slides | images
    pages: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    images: list[bytes] = field(default_factory=list)  # the page images (for a VLM judge)
    title_text: str = ""
    source: str = ""

    @classmethod
    def of(cls, unit: dict) -> UnitContext:
        """The context of a Unit (or Outcome) row."""
        return cls(
            unit_id=unit["unit_id"],
            kind=unit.get("kind") or "document",
            pages=unit["pages"],
            texts=unit["texts"],
            images=unit.get("images") or [],
            title_text=unit.get("title_text") or "",
            source=unit.get("source") or "",
        )


# A Pair's fields that live in memory only, never in a row (PAIR_TYPE has none of them).
IN_MEMORY = {"row": False}


@dataclass
class Pair:
    """The pair record: a generated question-answer pair from the parser to the writer, with the
    filter decisions taken on it (PAIR_TYPE; `row`/`from_row` at the stage borders only)."""

    qa_id: str
    question: str
    answer: str
    rationale: str | None = None
    evidence_pages: list[int] = field(default_factory=list)
    # What the prompt asked for (extractive, multi_hop, ..., not_answerable); a filter may retype.
    question_type: str | None = None
    decisions: list[Decision] = field(default_factory=list)
    # The unit the filters read the pair against.
    unit: UnitContext = field(default_factory=UnitContext, metadata=IN_MEMORY, repr=False)
    # Ratings a per-axis judge already gave the pair (a rated dataset's qa_meta.ratings): a
    # judge rating the same axes decides from them instead of asking again.
    ratings: dict[str, float] = field(default_factory=dict, metadata=IN_MEMORY, repr=False)

    def row(self) -> dict:
        return {
            "qa_id": self.qa_id,
            "question": self.question,
            "answer": self.answer,
            "rationale": self.rationale,
            "evidence_pages": self.evidence_pages,
            "question_type": self.question_type,
            "decisions": [vars(d) for d in self.decisions],  # no copies: a row is written at once
        }

    @classmethod
    def from_row(cls, row: dict, unit: UnitContext) -> Pair:
        """The pair of a PAIR_TYPE row, read against `unit`."""
        decisions = row["decisions"]
        return cls(
            row["qa_id"],
            row["question"],
            row["answer"],
            row["rationale"],
            list(row["evidence_pages"] or ()),
            row["question_type"],
            [Decision(**d) for d in decisions] if decisions else [],
            unit,
        )


@dataclass
class Reply:
    """What generation adds to a Unit to make its Outcome: the prompt, the model's reply as
    written, and the pairs read from it (or why none could be)."""

    prompt_id: str | None = None
    model: str | None = None
    raw_reply: str | None = None
    finish_reason: str | None = None
    completion_tokens: int = 0
    prompt_tokens: int = 0  # as the engine counted them (a VLM's include its image tokens)
    images_sent: int = 0  # page images sent with the prompt
    pairs: list[Pair] = field(default_factory=list)
    parse_errors: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    """A unit after generation and filtering: its Unit, and the Reply with the pairs read from
    it (each with its decisions once filtered). One OUTCOME_SCHEMA row: `to_row`/`from_row` at
    the stage borders only (Ray's Arrow batches, the journal)."""

    unit: Unit
    reply: Reply = field(default_factory=Reply)

    def to_row(self) -> dict:
        return {**vars(self.unit), **vars(self.reply), "pairs": [p.row() for p in self.reply.pairs]}

    def kept(self) -> list[Pair]:
        """The pairs that passed every decision taken so far."""
        return [p for p in self.reply.pairs if first_failure(p.decisions) is None]

    @classmethod
    def from_row(cls, row: dict) -> Outcome:
        """The Outcome of an OUTCOME_SCHEMA row; its pairs are read against its unit."""
        context = UnitContext.of(row)
        reply = Reply(
            **{name: row[name] for name in REPLY_NAMES},
            pairs=[Pair.from_row(pair, context) for pair in row["pairs"] or ()],
        )
        return cls(Unit.from_row(row), reply)


UNIT_NAMES = [f.name for f in fields(Unit)]
REPLY_NAMES = [f.name for f in fields(Reply) if f.name != "pairs"]


# A Unit row: consecutive pages of one document, or an ingest error for the whole document
# (then `error_code` is set and the page lists are empty). Error rows flow through the same
# dataset so that every input is accounted for without a second pass.
UNIT_FIELDS = [
    pa.field("unit_id", pa.string()),
    pa.field("doc_id", pa.string()),
    pa.field("source", pa.string()),
    pa.field("kind", pa.string()),
    pa.field("doc_pages", pa.int32()),  # pages read from the document
    pa.field("doc_units", pa.int32()),  # units the document yields in total
    pa.field("pages", pa.list_(pa.int32())),
    pa.field("texts", pa.list_(pa.string())),
    pa.field("text_sources", pa.list_(pa.string())),  # layer | ocr | none | ocr_failed
    pa.field("ocr_scores", pa.list_(pa.float64())),
    pa.field("images", pa.list_(pa.binary())),
    pa.field("error_code", pa.string()),
    pa.field("error", pa.string()),
    pa.field("layout", pa.string()),  # window | page | document
    pa.field("page_dups", pa.list_(pa.string())),  # per page: the earlier page it repeats
    pa.field("skipped", pa.string()),  # why no LLM call is made for the unit
    pa.field("title_text", pa.string()),  # the start of the document's first page's text
]
UNIT_SCHEMA = pa.schema(UNIT_FIELDS)
# A Unit row on its way from ingest to the OCR stage: per page, the image rendered for OCR at
# ingest.ocr_dpi (None: OCR reads `images`). The OCR stage drops it; it is never journaled.
OCR_UNIT_SCHEMA = pa.schema([*UNIT_FIELDS, pa.field("ocr_images", pa.list_(pa.binary()))])

RATING_TYPE = pa.struct([pa.field("axis", pa.string()), pa.field("score", pa.float64())])
DECISION_TYPE = pa.struct(
    [
        pa.field("filter", pa.string()),
        pa.field("passed", pa.bool_()),
        pa.field("score", pa.float64()),
        pa.field("reason", pa.string()),
        pa.field("ratings", pa.list_(RATING_TYPE)),
    ]
)
PAIR_TYPE = pa.struct(
    [
        pa.field("qa_id", pa.string()),
        pa.field("question", pa.string()),
        pa.field("answer", pa.string()),
        pa.field("rationale", pa.string()),
        pa.field("evidence_pages", pa.list_(pa.int32())),
        pa.field("question_type", pa.string()),
        pa.field("decisions", pa.list_(DECISION_TYPE)),
    ]
)

# An Outcome row: a Unit after generation and filtering.
OUTCOME_SCHEMA = pa.schema(
    [
        *UNIT_FIELDS,
        pa.field("prompt_id", pa.string()),
        pa.field("model", pa.string()),
        pa.field("raw_reply", pa.string()),
        pa.field("finish_reason", pa.string()),
        pa.field("completion_tokens", pa.int32()),
        pa.field("prompt_tokens", pa.int32()),
        pa.field("images_sent", pa.int32()),
        pa.field("pairs", pa.list_(PAIR_TYPE)),
        # Parts of the reply that could not be read as pairs, each with its reason.
        pa.field("parse_errors", pa.list_(pa.string())),
    ]
)


# The published Sample row, Docmatix / The Cauldron layout plus provenance: SAMPLE_FEATURES
# (HF Features) and SAMPLE_SCHEMA (its Arrow schema), built on first use (PEP 562), so the
# stages that never write a Sample (every Ray worker) do not import `datasets` (0.5 s).
@cache
def sample_features() -> Features:
    from datasets import Features, Image, List, Value

    return Features(
        {
            "id": Value("string"),
            "doc_id": Value("string"),
            "pages": List(Value("int32")),
            "images": List(Image()),
            "texts": List(
                {"user": Value("string"), "assistant": Value("string"), "source": Value("string")}
            ),
            "page_meta": List(
                {
                    "page": Value("int32"),
                    "text_source": Value("string"),
                    "ocr_score": Value("float64"),
                    # The earlier page ("doc_id:page", 0-based) this one repeats, or None.
                    "duplicate_of": Value("string"),
                }
            ),
            "qa_meta": List(
                {
                    "qa_id": Value("string"),
                    "prompt_id": Value("string"),
                    "model": Value("string"),
                    "rationale": Value("string"),
                    "evidence_pages": List(Value("int32")),
                    "question_type": Value("string"),
                    # A filter's score, and for a kept pair the note it left (grounding: how each
                    # answer number was supported, "262=diff(1250,988); 1250=page").
                    "scores": List(
                        {
                            "filter": Value("string"),
                            "score": Value("float64"),
                            "reason": Value("string"),
                        }
                    ),
                    # A per-axis judge's ratings (1-5), and their minimum (None when not rated).
                    "ratings": List({"axis": Value("string"), "score": Value("float64")}),
                    "rating_min": Value("float64"),
                }
            ),
        }
    )


def __getattr__(name: str) -> object:
    if name == "SAMPLE_FEATURES":
        return sample_features()
    if name == "SAMPLE_SCHEMA":
        return sample_features().arrow_schema
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


REJECT_SCHEMA = pa.schema(
    [
        pa.field("unit_id", pa.string()),
        pa.field("doc_id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("pages", pa.list_(pa.int32())),
        pa.field("qa_id", pa.string()),
        pa.field("prompt_id", pa.string()),
        pa.field("question", pa.string()),
        pa.field("answer", pa.string()),
        pa.field("filter", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("raw_reply", pa.string()),
        pa.field("question_type", pa.string()),
    ]
)

ERROR_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("stage", pa.string()),
        pa.field("code", pa.string()),
        pa.field("message", pa.string()),
    ]
)


@dataclass
class Reject:
    """A rejected pair with the filter and reason; for a reply no pair could be read from, the
    pair fields are None and `raw_reply` holds the reply. One REJECT_SCHEMA row (`row`)."""

    unit_id: str | None
    doc_id: str | None
    source: str
    pages: list[int]
    qa_id: str | None
    prompt_id: str | None
    question: str | None
    answer: str | None
    filter: str
    reason: str
    score: float | None = None
    raw_reply: str | None = None
    question_type: str | None = None

    def row(self) -> dict:
        # Its fields as they are (no deep copy, as `asdict` makes: 50 times the cost, per reject).
        return dict(vars(self))


@dataclass
class InputError:
    """An input (or a part of one) that could not be used, with its code. One ERROR_SCHEMA row."""

    doc_id: str | None
    source: str
    stage: str  # ingest | ...
    code: str
    message: str

    def row(self) -> dict:
        return dict(vars(self))
