"""Filters: each one answers keep-or-reject for a question-answer pair, with a reason."""

from curation.filters.base import Filter, PairContext
from curation.filters.chain import FILTER_TYPES, FilterChain

__all__ = ["FILTER_TYPES", "Filter", "FilterChain", "PairContext"]
