"""Filter chains: an ordered list of filters read from filters/*.yaml, applied to Outcome rows,
and the chain's dedup.

The filters (`filters:`) see one batch at a time, in the order the file lists them. The dedup
(the chain's own `dedup:` key, beside `filters:`) is a step over the whole dataset: it runs after
every filter, over the pairs they kept, in dataset order (a run's assembly, `curation filter`),
never within a batch. A chain written before the key existed, with a `type: dedup` entry among
its filters, still loads: the entry is moved to the key, with a deprecation warning naming the
file (once per file and process).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from itertools import islice
from pathlib import Path

from pydantic import Field, ValidationError

from curation.config import (
    ConfigError,
    GenerateConfig,
    StrictModel,
    describe_validation_error,
    load_model,
    locate,
)
from curation.filters.base import Filter
from curation.filters.citations import CitationFilter
from curation.filters.cross_page import CrossPageFilter
from curation.filters.decontam import DecontamFilter
from curation.filters.dedup import DedupFilter
from curation.filters.entities import EntityGroundingFilter
from curation.filters.grounding import GroundingFilter
from curation.filters.judge import JudgeFilter
from curation.filters.repetition import RepetitionFilter
from curation.filters.rules import (
    AnomalyFilter,
    AnswerEchoFilter,
    BoilerplateFilter,
    LengthFilter,
    NonEmptyFilter,
    PatternFilter,
    ReplyLabelFilter,
    UnitDuplicateFilter,
)
from curation.schema import Decision, Outcome, Pair

FILTER_TYPES: dict[str, type[Filter]] = {
    cls.type: cls
    for cls in (
        CitationFilter,
        NonEmptyFilter,
        LengthFilter,
        PatternFilter,
        AnswerEchoFilter,
        ReplyLabelFilter,
        BoilerplateFilter,
        AnomalyFilter,
        GroundingFilter,
        EntityGroundingFilter,
        CrossPageFilter,
        RepetitionFilter,
        UnitDuplicateFilter,
        JudgeFilter,
        DecontamFilter,
    )
}

log = logging.getLogger(__name__)
_warned: set[Path] = set()  # chain files already warned about (`moved_dedup`)


class ChainSpec(StrictModel):
    """A chain file: a name, a description, the filters in order and the dedup after them."""

    name: str
    description: str = ""
    extends: str | None = Field(
        None,
        description="Another chain file (relative to this one) whose filters come first; an "
        "entry here of the same type and name replaces its entry in place, others follow.",
    )
    filters: list[dict] = Field(default_factory=list)
    dedup: dict | None = Field(
        None,
        description="The dedup over the whole dataset (DedupFilter's settings: threshold, "
        "num_perm, ngram, backend, ...), after every filter; one here replaces the base's.",
    )


def moved_dedup(path: Path, spec: ChainSpec) -> ChainSpec:
    """The chain file as it is now written: a `type: dedup` entry in its `filters:` (the old
    form) moved to its `dedup:` key, with a deprecation warning naming the file, once."""
    old = [entry for entry in spec.filters if entry.get("type") == DedupFilter.type]
    if not old:
        return spec
    if len(old) > 1 or spec.dedup is not None:
        raise ConfigError(f"{path}: field 'dedup': the chain has more than one dedup")
    if path not in _warned:
        _warned.add(path)
        log.warning(
            "%s: a 'type: dedup' entry in 'filters:' is deprecated; it was moved to the chain's "
            "own 'dedup:' key, where it runs: over the whole dataset, after every filter. Write "
            "its settings there ('dedup: {threshold: 0.8, ...}' beside 'filters:').",
            path,
        )
    dedup = {key: value for key, value in old[0].items() if key != "type"}
    filters = [entry for entry in spec.filters if entry is not old[0]]
    return spec.model_copy(update={"filters": filters, "dedup": dedup})


def chain_specs(path: Path | str) -> list[tuple[Path, ChainSpec]]:
    """The chain file (a relative one not here: the shipped copy, `locate`) and the files it
    extends (each relative to the one naming it), read once each, outermost first; a chain that
    extends itself is an error."""
    specs: list[tuple[Path, ChainSpec]] = []
    path = locate(path).resolve()
    while True:
        if any(path == seen for seen, _ in specs):
            chain = ", ".join(str(seen) for seen, _ in specs)
            raise ConfigError(f"{path}: extends itself (through {chain})")
        spec = moved_dedup(path, load_model(path, ChainSpec))
        specs.append((path, spec))
        if not spec.extends:
            return specs
        path = (path.parent / spec.extends).resolve()


def chain_entries(specs: list[tuple[Path, ChainSpec]]) -> list[tuple[Path, dict]]:
    """The filter entries of a chain (`chain_specs`), base chain first, each with the file it
    comes from: an entry of the same type and name as a base entry replaces it in place."""

    def key(entry: dict) -> tuple:
        return entry.get("type"), entry.get("name")

    entries: list[tuple[Path, dict]] = []
    for path, spec in reversed(specs):
        for entry in spec.filters:
            where = next((i for i, (_, e) in enumerate(entries) if key(e) == key(entry)), None)
            if where is None:
                entries.append((path, entry))
            else:
                entries[where] = (path, entry)
    return entries


def chain_dedup(specs: list[tuple[Path, ChainSpec]]) -> DedupFilter | None:
    """The chain's dedup (`chain_specs`): the outermost file's `dedup:`, else its base's."""
    for path, spec in specs:
        if spec.dedup is not None:
            try:
                return DedupFilter.model_validate(spec.dedup)
            except ValidationError as exc:
                message = describe_validation_error(path, exc)
                raise ConfigError(message.replace("field '", "field 'dedup.")) from exc
    return None


class FilterChain:
    """Runs filters in order; a pair rejected by one filter is not shown to the later ones.

    Entries that cannot run as configured (a judge without an engine) are left out of
    `filters` and listed in `inactive`. `dedup` is not one of the filters: it runs after them
    all, over the whole dataset, where the caller assembles it (`DedupFilter.deduplicator`).
    """

    def __init__(
        self,
        name: str,
        filters: list[Filter],
        inactive: list[str] | None = None,
        dedup: DedupFilter | None = None,
    ) -> None:
        self.name = name
        self.filters = filters
        self.inactive = inactive or []
        self.dedup = dedup

    @classmethod
    def load(cls, path: Path | str) -> FilterChain:
        """Read a chain file; errors name the file, the filter's position and the field."""
        specs = chain_specs(path)
        filters, inactive = [], []
        for index, (source, entry) in enumerate(chain_entries(specs)):
            params = dict(entry)
            kind = params.pop("type", None)
            if kind not in FILTER_TYPES:
                known = ", ".join(sorted(FILTER_TYPES))
                raise ConfigError(
                    f"{source}: field 'filters.{index}.type': '{kind}' is not one of {known}"
                )
            try:
                flt = FILTER_TYPES[kind].model_validate(params)
            except ValidationError as exc:
                message = describe_validation_error(source, exc)
                raise ConfigError(message.replace("field '", f"field 'filters.{index}.")) from exc
            if flt.active:
                filters.append(flt)
            else:
                inactive.append(flt.label)
        dedup = chain_dedup(specs)
        if not filters and dedup is None:
            raise ConfigError(f"{path}: no filter can run (inactive: {', '.join(inactive)})")
        return cls(specs[0][1].name, filters, inactive, dedup)

    def send_again(self) -> None:
        """Turn the response cache off for the chain's LLM filters (the judge, a verifying
        grounding): every request is sent again, as `curation run --no-cache` asks."""
        for flt in self.filters:
            engine = getattr(flt, "engine", None)
            if isinstance(engine, GenerateConfig):
                engine.cache = False

    def decide(self, pairs: list[Pair]) -> list[list[Decision]]:
        """Each pair's decisions, ending at its first rejection (also attached to the pair, as
        `pair.decisions`). A pair a filter passes is replaced in `pairs` by that filter's
        `rewrite` of it (citations cleaned out), so the later filters and the caller see the
        rewritten pair; a rejected one stays as it was."""
        decisions: list[list[Decision]] = [[] for _ in pairs]
        alive = list(range(len(pairs)))
        for flt in self.filters:
            if not alive:
                break
            verdicts = judged_by(flt, [pairs[i] for i in alive])
            for i, verdict in zip(alive, verdicts, strict=True):
                decisions[i].append(verdict)
            alive = [i for i, verdict in zip(alive, verdicts, strict=True) if verdict.passed]
            for i in alive:
                pairs[i] = flt.rewrite(pairs[i])
        for pair, pair_decisions in zip(pairs, decisions, strict=True):
            pair.decisions = pair_decisions
        return decisions

    def replay(self, pairs: list[Pair], decisions: list[list[Decision]]) -> None:
        """Apply in `pairs` the rewrites that `decide` made, from the decisions it returned (a
        second pass over the input, whose decisions were staged by the first)."""
        for k, pair_decisions in enumerate(decisions):
            for flt, decision in zip(self.filters, pair_decisions, strict=False):
                if decision.passed:
                    pairs[k] = flt.rewrite(pairs[k])
            pairs[k].decisions = pair_decisions

    def __call__(self, outcomes: list[Outcome]) -> list[Outcome]:
        """The outcomes with every pair's decisions filled in, and its fields as rewritten."""
        pairs = [pair for outcome in outcomes for pair in outcome.reply.pairs]
        self.decide(pairs)  # replaces a rewritten pair in `pairs`: give each outcome its own back
        decided = iter(pairs)
        for outcome in outcomes:
            outcome.reply.pairs = list(islice(decided, len(outcome.reply.pairs)))
        return outcomes


def judged_by(flt: Filter, pairs: list[Pair]) -> list[Decision]:
    """`flt`'s decisions on `pairs`; a pair of a question type it skips passes it unjudged."""
    if not flt.skip_types:
        return flt.decide(pairs)
    judged = [i for i, pair in enumerate(pairs) if pair.question_type not in flt.skip_types]
    verdicts = dict(zip(judged, flt.decide([pairs[i] for i in judged]), strict=True))
    return [
        verdicts.get(i) or flt.keep(reason=f"not applied to {pair.question_type} pairs")
        for i, pair in enumerate(pairs)
    ]


@lru_cache(maxsize=4)
def load_chain(path: str, cache: bool = True) -> FilterChain:
    """The chain, loaded once per process: its filters run batch by batch, its `dedup` over the
    whole dataset when it is assembled (in input order, so its choices do not depend on
    batching). Without `cache` (`--no-cache`) the judge sends every request again too."""
    chain = FilterChain.load(path)
    if not cache:
        chain.send_again()
    return chain
