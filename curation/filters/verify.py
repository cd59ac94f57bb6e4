"""Verification of an answer's numbers by an LLM: grounding's `unsettled: verify`.

The bounded number search (`curation.filters.numbers.derivation`) settles most numbers from the page text
alone; a number it cannot settle (a derivation outside its groups, two steps) is shown to a
model with the page excerpt around it, the question and the answer, and the model shows the
computation or says the number is unsupported. A wrong answer whose value is printed elsewhere
on the page (the neighbouring row, another year) settles by the page alone like a right one;
only a reader of the question can tell them apart (`verify_settled`).

The verdict decides: "verified" with a computation keeps the pair (a computation written as
arithmetic must hold), "unsupported" rejects it, and a reply with no readable verdict, or an
engine error, rejects it too: a pair is never kept unverified. Page text and the pair are
fenced as data as the judge fences them; requests go through the response cache.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from curation.config import GenerateConfig
from curation.filters.judge import REASON_KEYS, data_fence
from curation.filters.numbers.quantity import quantities
from curation.filters.numbers.written import written_arithmetic
from curation.generate.cache import send_batched
from curation.generate.engines.base import ChatRequest, Engine
from curation.generate.prompts import (
    PromptLibrary,
    PromptRenderError,
    PromptTemplate,
    resolve_prompt_dir,
)
from curation.jsonscan import json_objects
from curation.schema import Pair
from curation.seeding import content_id
from curation.tokens import content_words

VERDICT_KEYS = ("verdict", "status", "result", "conclusion")
COMPUTATION_KEYS = ("computation", "calculation", "derivation", "working", "evidence", "proof")
# "not verified" is read before "verified" can match inside it.
UNSUPPORTED = re.compile(
    r"\b(?:unsupported|unverified|not (?:supported|verified))\b", re.IGNORECASE
)
VERIFIED = re.compile(r"\b(?:verified|supported)\b", re.IGNORECASE)
VERDICT_TAIL = re.compile(r"\A[\s\"'*:.,;\u2013\u2014-]*")
# A computation or reason field of JSON the reply cut off before it closed.
TEXT_FIELD = re.compile(
    rf"[\"']?\b(?:{'|'.join(COMPUTATION_KEYS + REASON_KEYS)})\b[\"']?\s*[:=]\s*[\"']?"
    r"(?P<text>[^\"\n]+)",
    re.IGNORECASE,
)
VERIFY_SCHEMA = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["verified", "unsupported"]},
        "computation": {"type": "string"},
        "reason": {"type": "string"},
    },
    "required": ["verdict", "computation", "reason"],
    "additionalProperties": False,
}
SHOWN_CHARS = 200  # of the verifier's computation or reason, in a decision's reason


class VerifyReplyError(ValueError):
    """A verifier reply with no readable verdict."""


@dataclass(frozen=True)
class Verdict:
    """The verifier's verdict: verified with its computation, or unsupported with its reason."""

    verified: bool
    text: str


def _read(text: str) -> Verdict | None:
    """The first verdict word of a text and what follows it ("Verified: 1,010 = 412 + 598"),
    or None when it holds none."""
    found = [m for m in (UNSUPPORTED.search(text), VERIFIED.search(text)) if m]
    if not found:
        return None
    first = min(found, key=lambda m: m.start())  # "not verified" starts before "verified"
    rest = VERDICT_TAIL.sub("", text[first.end() :])
    field = TEXT_FIELD.search(rest)
    rest = field.group("text") if field else rest
    return Verdict(first.re is VERIFIED, " ".join(rest.split()))


def _from_json(text: str) -> Verdict | None:
    """The verdict of the first JSON object in the reply that holds one, with its computation
    (verified) or its reason (unsupported)."""
    for data in json_objects(text):
        lowered = {str(k).lower(): v for k, v in data.items()}
        word = next((str(lowered[k]) for k in VERDICT_KEYS if k in lowered), "")
        verdict = _read(word)
        if verdict is None:
            continue
        keys = (
            COMPUTATION_KEYS + REASON_KEYS if verdict.verified else REASON_KEYS + COMPUTATION_KEYS
        )
        shown = next((str(lowered[k]) for k in keys if str(lowered.get(k) or "").strip()), "")
        return Verdict(verdict.verified, " ".join(shown.split()) or verdict.text)
    return None


def parse_verdict(text: str) -> Verdict:
    """The verdict of a verifier reply: JSON (`verdict` with `computation` or `reason`), fenced
    or cut short, or prose ("Verified: 1,010 = 412 + 598", "Unsupported - the page gives ...").
    A verified verdict must show its computation. Raises VerifyReplyError otherwise."""
    if not text or not text.strip():
        raise VerifyReplyError("empty reply")
    found = _from_json(text) or _read(text)
    if found is None:
        shown = " ".join(text.split())[:60]
        raise VerifyReplyError(f"no verdict in {shown!r}")
    if found.verified and not found.text:
        raise VerifyReplyError("verified without a computation")
    return found


def unsound(verdict: Verdict) -> str | None:
    """The first arithmetic the verifier wrote that does not hold ("412 + 598 = 1,110"), as a
    reason, or None: a computation is checked before it keeps a pair."""
    wrong = next((w for w in written_arithmetic(verdict.text) if not w.holds), None)
    if wrong is None:
        return None
    shown = ", ".join(f"{v:.4g}" for v in wrong.values)
    return f"the verifier's '{wrong.text}' gives {shown}, not {wrong.result.label}"


def claim_excerpts(pair: Pair, claims: list[str], max_chars: int) -> list[dict[str, object]]:
    """The pages for the prompt (1-based numbers), each cut to an equal share of `max_chars`
    around the claim: the window, from a line start, holding the most of the question's and
    answer's words and numbers (the first such window on a tie)."""
    share = max_chars // max(len(pair.unit.texts), 1)
    asked = f"{pair.question} {pair.answer}"
    terms = {w.lower() for w in content_words(asked)} | {q.text for q in quantities(asked)}
    terms |= set(claims)
    excerpts = []
    for page, text in zip(pair.unit.pages, pair.unit.texts, strict=True):
        start = 0
        if len(text) > share:
            lower = text.lower()
            starts = [0] + [m.end() for m in re.finditer(r"\n", text) if m.end() < len(text)]
            start = max(
                starts, key=lambda s: sum(lower.count(t.lower(), s, s + share) for t in terms)
            )
        excerpts.append({"number": page + 1, "text": text[start : start + share].strip()})
    return excerpts


def verify_messages(
    template: PromptTemplate, pair: Pair, claims: list[str], max_page_chars: int
) -> list[dict]:
    """The verifier's chat messages about the numbers `claims` of one pair's answer: the page
    excerpts around them, the question and the answer, fenced as data."""
    pages = claim_excerpts(pair, claims, max_page_chars) if pair.unit.texts else []
    return template.render(
        question=pair.question,
        answer=pair.answer,
        claims=claims,
        kind=pair.unit.kind,
        pages=pages,
        fence=data_fence(pair.question, pair.answer, *(str(p["text"]) for p in pages)),
    )


class Verifier:
    """Asks the verifier model about the numbers of pairs, in batches, through the response
    cache when its engine section keeps `cache` on."""

    def __init__(self, cfg: GenerateConfig, prompts: str, prompt: str, max_page_chars: int):
        self.cfg, self.prompts, self.prompt = cfg, prompts, prompt
        self.max_page_chars = max_page_chars
        self.engine: Engine | None = None
        self.template: PromptTemplate | None = None

    def verdicts(self, asked: list[tuple[Pair, list[str]]]) -> list[Verdict | str]:
        """The verdict on each pair's claims, or why there is none (the prompt did not render,
        the engine failed, the reply had no readable verdict)."""
        if self.template is None:
            self.template = PromptLibrary(resolve_prompt_dir(self.prompts)).named(self.prompt)
        out: dict[int, Verdict | str] = {}
        requests: dict[int, ChatRequest] = {}
        for i, (pair, claims) in enumerate(asked):
            try:
                requests[i] = self.request(pair, claims, self.template)
            except PromptRenderError as exc:  # a branch of the template only this pair reaches
                out[i] = f"verification prompt not rendered: {exc}"
        self.engine, results = send_batched(self.cfg, self.engine, list(requests.values()))
        for i, result in zip(requests, results, strict=True):
            if result.error:
                out[i] = f"engine error: {result.error}"
                continue
            try:
                out[i] = parse_verdict(result.text)
            except VerifyReplyError as exc:
                out[i] = f"verifier reply unreadable: {exc}"
        return [out[i] for i in range(len(asked))]

    def request(self, pair: Pair, claims: list[str], template: PromptTemplate) -> ChatRequest:
        """The request about `claims` of one pair (the same on every run, so a rerun finds its
        reply in the response cache)."""
        return ChatRequest(
            request_id=content_id(
                "verify", self.prompt, pair.unit.unit_id, pair.question, pair.answer, *claims
            ),
            messages=verify_messages(template, pair, claims, self.max_page_chars),
            **self.cfg.sampling(),
            prefill=template.meta.prefill,
            json_schema=VERIFY_SCHEMA if template.meta.output == "json" else None,
        )
