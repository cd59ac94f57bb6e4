"""Filters: each one answers keep-or-reject for a question-answer pair, with a reason."""

from curation.filters.base import Filter
from curation.filters.chain import FILTER_TYPES, FilterChain
from curation.filters.dedup import Deduplicator, pair_text

__all__ = ["FILTER_TYPES", "Deduplicator", "Filter", "FilterChain", "pair_text"]
