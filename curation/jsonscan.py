"""JSON values inside model replies: fenced, wrapped in prose, with trailing commas or single
quotes (json5), or cut off at max_tokens. Shared by the reply parser and the judge."""

from __future__ import annotations

import json
from collections.abc import Iterator

import json5

CLOSERS = {"[": "]", "{": "}"}


def closing_bracket(text: str, start: int) -> int | None:
    """The index after the bracket that closes the one at `start`; None when the text ends
    first (a reply cut off inside JSON); -1 when the brackets do not match (prose)."""
    stack: list[str] = []
    quote: str | None = None
    before = ""  # the last character outside strings that is not a space
    index = start
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = None
        # A single quote opens a string only where a JSON value or key starts, not in "it's".
        elif char == '"' or (char == "'" and before in "[{:,"):
            quote = char
        elif char in CLOSERS:
            stack.append(CLOSERS[char])
        elif char in "]}":
            if stack.pop() != char:
                return -1
            if not stack:
                return index + 1
        if not char.isspace() and not quote:
            before = char
        index += 1
    return None


def load_json(candidate: str) -> object:
    """The value of a JSON (or JSON5: trailing commas, single quotes, unquoted keys) text, or
    None when it is neither."""
    try:
        return json.loads(candidate)
    except ValueError:
        pass
    try:
        return json5.loads(candidate)
    except ValueError:
        return None


def json_values(text: str) -> Iterator[tuple[int, int | None, object]]:
    """(start, end, value) of each outermost object or array readable in the text, in order.
    A span the text ends inside of is given as (start, None, None), then looked inside (its
    whole inner values are still read); so are spans that do not parse (prose brackets)."""
    position = 0
    while True:
        starts = [i for i in (text.find("{", position), text.find("[", position)) if i >= 0]
        if not starts:
            return
        start = min(starts)
        end = closing_bracket(text, start)
        value = load_json(text[start:end]) if end and end > 0 else None
        if value is not None:
            yield start, end, value
            position = end
            continue
        if end is None:
            yield start, None, None
        position = start + 1


def json_objects(text: str) -> Iterator[dict]:
    """Each JSON object readable in a reply, in order; of an array, its first object (a model
    that wraps its one answer in a list)."""
    for _, _, data in json_values(text):
        if isinstance(data, list) and data and isinstance(data[0], dict):
            data = data[0]
        if isinstance(data, dict):
            yield data
