"""Output folders built the way a run builds them: real PNG pages fed through DatasetWriter."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw

from curation.output.shards import DatasetWriter
from curation.schema import Decision, Outcome, Page, Pair, Reply, Unit, UnitContext
from curation.units import error_row, unit_row

RECIPE = {
    "name": "tiny",
    "description": "A small dataset built by the tests.",
    "inputs": ["docs/*.pdf"],
    "units": {"pages_per_unit": 2, "overlap": 0, "max_chars": 4000},
    "generate": {"engine": "local", "model": "bundled", "prompt_set": "docmatix"},
    "filters": "filters/docmatix.yaml",
    "output": {"dir": "out/tiny", "rows_per_shard": 2},
}


# What a run's manifest says besides its counts and files (DatasetWriter.close), for RECIPE.
TINY_MANIFEST = {
    "recipe_name": RECIPE["name"],
    "recipe_path": "recipes/tiny.yaml",
    "recipe_hash": "0" * 64,
    "recipe": RECIPE,
    "filter_chain": "docmatix",
    "versions": {"curation": "0.1.0"},
    "wall_seconds": 1.5,
}


def page_png(label: str, size: tuple[int, int] = (60, 80)) -> bytes:
    """A small real PNG page with its label drawn on it."""
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((4, 4), label, fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def document_units(doc_id: str, source: str, n_pages: int, pages_per_unit: int) -> list[dict]:
    """Unit rows (the real unit_row) over n_pages synthetic pages of one document."""
    pages = [
        Page(
            doc_id=doc_id,
            source=source,
            kind="document",
            page=i,
            n_pages=n_pages,
            text=f"Page {i + 1} of {source}: the budget grew by {10 + i} percent.",
            text_source="layer",
            image=page_png(f"{doc_id} p{i + 1}"),
            width=60,
            height=80,
        )
        for i in range(n_pages)
    ]
    windows = [pages[i : i + pages_per_unit] for i in range(0, n_pages, pages_per_unit)]
    return [unit_row(window, len(windows)) for window in windows]


def outcome(
    unit: dict,
    pairs: list[tuple[str, str, bool]],
    prompt_id: str = "docmatix/coverage",
    judge: float | None = None,
    parse_errors: tuple[str, ...] = (),
) -> Outcome:
    """An Outcome of a Unit row: the unit plus generated pairs; a pair fails the rule filter
    when not ok (`.to_row()`: as the journal stores it)."""

    def decisions(index: int, ok: bool) -> list[Decision]:
        made = [Decision("rule", ok, None, "" if ok else "bad")]
        if judge is not None and ok:
            made.append(Decision("judge", True, judge + index, ""))
        return made

    context = UnitContext.of(unit)
    reply = Reply(
        prompt_id=prompt_id,
        model="test-model",
        raw_reply="Q1: ...",
        finish_reason="stop",
        completion_tokens=12,
        parse_errors=list(parse_errors),
        pairs=[
            Pair(
                f"{unit['unit_id']}-{i}",
                question,
                answer,
                evidence_pages=unit["pages"][:1],
                decisions=decisions(i, ok),
                unit=context,
            )
            for i, (question, answer, ok) in enumerate(pairs)
        ],
    )
    return Outcome(Unit.from_row(unit), reply)


def build_output(out_dir: Path, judge: bool = True, rows_per_shard: int = 2) -> dict:
    """A finished output folder: 2 documents (5 pages, 3 units), 1 broken input; the manifest."""
    report = document_units("aaaa1111", "docs/report.pdf", n_pages=3, pages_per_unit=2)
    slides = document_units("bbbb2222", "docs/slides.pdf", n_pages=2, pages_per_unit=2)
    score = 7.0 if judge else None
    writer = DatasetWriter(
        out_dir,
        rows_per_shard=rows_per_shard,
        inputs=["docs/report.pdf", "docs/slides.pdf", "docs/broken.pdf"],
    )
    writer.add(
        outcome(
            report[0],
            [
                ("What grew on page 1?", "The budget grew by 10 percent.", True),
                ("And on page 2?", "By 11 percent.", True),
                ("Is [this] bad?", "Yes.", False),
            ],
            judge=score,
        )
    )
    writer.add(
        outcome(
            report[1],
            [("What is on the last page?", "A budget growth of 12 percent.", True)],
            prompt_id="docmatix/summary",
            judge=score,
            parse_errors=("question without an answer",),
        )
    )
    writer.add(
        outcome(
            slides[0],
            [
                ("What do the slides show?", "Two pages about the budget.", True),
                ("Which source is this?", "docs/slides.pdf", True),
            ],
            judge=score,
        )
    )
    writer.add(outcome(error_row("cccc3333", "docs/broken.pdf", "corrupt", "cannot open"), []))
    return writer.close(dict(TINY_MANIFEST))
