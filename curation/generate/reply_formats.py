"""Readers of the structured reply formats: JSON (bare, fenced, inside prose, JSON5), YAML lists
(fenced or bare) and Markdown tables of pairs. Each returns a ReplyRead, or None when the reply
holds no such format (parse.py then tries the next reader, the line reader last).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pydantic import ValidationError

from curation.generate.reply_text import FENCE, QAItem, ReplyRead, strip_emphasis
from curation.jsonscan import json_values
from curation.yamlfile import ConfigError, parse_yaml

# --- JSON ----------------------------------------------------------------------------------

QA_KEY = re.compile(r"[\"'](?:question|answer|q|a)[\"']\s*:", re.IGNORECASE)
KEY_NAMES = {
    "question": "question",
    "q": "question",
    "query": "question",
    "answer": "answer",
    "a": "answer",
    "rationale": "rationale",
    "reasoning": "rationale",
    "reason": "rationale",
    "explanation": "rationale",
    "justification": "rationale",
    "evidence_pages": "evidence_pages",
    "evidence": "evidence_pages",
    "pages": "evidence_pages",
    "page_numbers": "evidence_pages",
    "source_pages": "evidence_pages",
    "slides": "evidence_pages",
    "evidence_slides": "evidence_pages",
}


def _qa_dicts(value: object) -> list[dict] | None:
    """The question-answer objects a JSON value holds (itself, a list, or a list under a key)."""
    if isinstance(value, dict):
        if any(str(key).lower() in ("question", "q", "answer", "a") for key in value):
            return [value]
        for inner in value.values():
            found = _qa_dicts(inner)
            if found:
                return found
    if isinstance(value, list):
        dicts = [item for item in value if isinstance(item, dict)]
        if any(_qa_dicts(item) == [item] for item in dicts):
            return dicts
    return None


def _json_objects(text: str) -> Iterator[list[dict] | None]:
    """Each group of question-answer objects in the text; None for a JSON value holding
    question keys that the reply ends inside of."""
    for start, end, value in json_values(text):
        if end is None:
            if QA_KEY.search(text, start):
                yield None  # cut off: whole objects inside it are still read
            continue
        found = _qa_dicts(value)
        if found:
            yield found


def parse_json(text: str) -> ReplyRead | None:
    result, found, cut = ReplyRead(), False, False
    for group in _json_objects(text):
        found = True
        if group is None:
            cut = True
            continue
        read_items(group, "JSON", result)
    if cut:
        result.errors.append("reply cut off inside a JSON item (max_tokens?)")
    return result if found else None


def read_items(items: list[dict], label: str, result: ReplyRead) -> None:
    """Question-answer dicts (any key names of KEY_NAMES) into the result's pairs, or errors."""
    for item in items:
        index = len(result.items) + len(result.errors)
        named = {KEY_NAMES.get(str(k).lower(), str(k)): v for k, v in item.items()}
        try:
            result.items.append(QAItem.model_validate(named))
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            result.errors.append(f"{label} item {index}: {problem}")


# --- YAML ----------------------------------------------------------------------------------

BARE_YAML = re.compile(
    r"^\s*(?:-\s+)?[\"']?(?:question|q|pairs|qa_pairs|questions)[\"']?\s*:", re.I
)


def _yaml_blocks(text: str) -> Iterator[str]:
    """Fenced blocks tagged yaml/yml, or untagged; else the whole reply when it starts as a YAML
    list or mapping of pairs (`- question: ...`)."""
    lines, block, tag = text.splitlines(), None, ""
    fenced = False
    for line in lines:
        fence = FENCE.match(line)
        if fence and block is None:
            block, tag = [], fence.group(1).lower()
        elif fence:
            fenced = True
            if tag in ("yaml", "yml", ""):
                yield "\n".join(block)
            block = None
        elif block is not None:
            block.append(line)
    if not fenced and BARE_YAML.match(text):
        yield text


def parse_yaml_pairs(text: str) -> ReplyRead | None:
    """Pairs from YAML (a list of pairs, or a mapping holding one); None when no YAML block
    holds any, or the YAML is invalid (model-written YAML often is: `answer: Note: ...`), so the
    line reader takes the reply, fences and all."""
    items: list[dict] = []
    for block in _yaml_blocks(text):
        try:  # the one YAML reader: aliases bounded (a reply is untrusted text)
            value = parse_yaml(block, "reply")
        except ConfigError:
            return None
        found = _qa_dicts(value)
        # One bare mapping (`Question: ...` / `Answer: ...`) is left to the line reader: YAML
        # would keep only the last of repeated keys.
        if found and found != [value]:
            items += found
    if not items:
        return None
    result = ReplyRead()
    read_items(items, "YAML", result)
    return result


# --- Markdown tables -------------------------------------------------------------------------

TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
CELL_SPLIT = re.compile(r"(?<!\\)\|")
BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
IGNORED_COLUMNS = {"", "#", "no", "no.", "nr", "n", "id", "pair", "index", "number"}


def _cells(line: str) -> list[str]:
    line = line.strip()
    line = line[1:] if line.startswith("|") else line
    line = line[:-1] if line.endswith("|") and not line.endswith("\\|") else line
    return [cell.strip().replace("\\|", "|") for cell in CELL_SPLIT.split(line)]


def _column(header: str) -> str | None:
    name = strip_emphasis(header).strip().strip(":").strip().lower()
    if name in IGNORED_COLUMNS:
        return None
    return KEY_NAMES.get(name) or KEY_NAMES.get(name.replace(" ", "_")) or name


def parse_tables(text: str, cut_off: bool) -> ReplyRead | None:
    """Pairs from Markdown tables whose header names a question and an answer column (`| # |
    Question | Answer |`, `| Q | A |`, with rationale or evidence columns); None when the
    reply has no such table (a table inside an answer is the answer's text)."""
    lines = text.splitlines()
    result, found = ReplyRead(), False
    i = 0
    while i < len(lines) - 1:
        if not (lines[i].lstrip().startswith("|") and TABLE_RULE.match(lines[i + 1])):
            i += 1
            continue
        columns = [_column(cell) for cell in _cells(lines[i])]
        if not {"question", "answer"} <= set(columns):
            i += 2
            continue
        found = True
        i += 2
        rows = []
        while i < len(lines) and lines[i].lstrip().startswith("|"):
            rows.append(lines[i])
            i += 1
        for n, row in enumerate(rows):
            cells = _cells(row)
            last = n == len(rows) - 1 and i == len(lines)
            if last and cut_off and (len(cells) < len(columns) or not row.rstrip().endswith("|")):
                at = columns.index("question")
                question = cells[at] if at < len(cells) else row  # cut before its question cell
                result.errors.append(f"reply cut off at max_tokens in this pair: {question[:80]!r}")
                continue
            item = {
                name: BREAK.sub("\n", cell)
                for name, cell in zip(columns, cells, strict=False)
                if name is not None
            }
            read_items([item], "table row", result)
    return result if found else None
