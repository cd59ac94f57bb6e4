"""Compare two output folders pair by pair: the pairs (by qa_id) kept in one and rejected in
the other, or present in one only. One folder's fates are held as qa_id -> (fate, reason), no
texts; the other is streamed past them."""

from __future__ import annotations

from curation.view.rows import Fate
from curation.view.sources import Source

MAX_ROWS = 5_000  # rows the site lists; the counts cover every pair


def _row(pair: Fate, here: tuple[str, str], there: tuple[str, str]) -> dict:
    return {
        "qa_id": pair.qa_id,
        "question": pair.question,
        "answer": pair.answer,
        "here": here[0],
        "here_reason": here[1],
        "there": there[0],
        "there_reason": there[1],
    }


def _differs(here: str, there: str) -> bool:
    """Kept on one side and rejected on the other, or present on one side only."""
    return "absent" in (here, there) or (here == "kept") != (there == "kept")


def compare_sources(here: Source, there: Source) -> dict:
    """The compare data: {"other", "rows", "counts"} (and "truncated_from" when rows were left
    out). Counts: kept_here_rejected_there, rejected_here_kept_there, only_here, only_there."""
    absent = ("absent", "")
    theirs = {pair.qa_id: (pair.fate, pair.reason) for pair in there.fates()}
    counts = dict.fromkeys(
        ("kept_here_rejected_there", "rejected_here_kept_there", "only_here", "only_there"), 0
    )
    rows: list[dict] = []
    differing = 0
    for pair in here.fates():
        other = theirs.pop(pair.qa_id, absent)
        if not _differs(pair.fate, other[0]):
            continue
        differing += 1
        if other is absent:
            counts["only_here"] += 1
        elif pair.fate == "kept":
            counts["kept_here_rejected_there"] += 1
        else:
            counts["rejected_here_kept_there"] += 1
        if len(rows) < MAX_ROWS:
            rows.append(_row(pair, (pair.fate, pair.reason), other))
    only_there = set(theirs)  # never seen here
    counts["only_there"] = len(only_there)
    differing += len(only_there)
    if only_there and len(rows) < MAX_ROWS:
        for pair in there.fates():
            if pair.qa_id in only_there and len(rows) < MAX_ROWS:
                rows.append(_row(pair, absent, (pair.fate, pair.reason)))
                only_there.discard(pair.qa_id)
    found = {"other": str(there.out_dir), "rows": rows, "counts": counts}
    if differing > len(rows):
        found["truncated_from"] = differing
    return found
