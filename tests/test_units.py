from curation.config import UnitsConfig
from curation.schema import Page
from curation.units import document_layout, document_units, unit_windows


def pages(n: int) -> list[Page]:
    return [Page("d", "s.pdf", "document", i, n, f"text {i}", "layer", b"", 1, 1) for i in range(n)]


def test_windows_without_overlap():
    assert unit_windows(5, 2, 0) == [(0, 2), (2, 4), (4, 5)]


def test_windows_with_overlap_end_at_last_page():
    assert unit_windows(5, 4, 1) == [(0, 4), (3, 5)]
    assert unit_windows(7, 3, 1) == [(0, 3), (2, 5), (4, 7)]


def test_short_document_is_one_window():
    assert unit_windows(1, 4, 0) == [(0, 1)]
    assert unit_windows(3, 4, 2) == [(0, 3)]


def test_document_units_groups_in_order():
    rows = list(document_units(pages(5), UnitsConfig(pages_per_unit=2, overlap=1)))
    assert [r["pages"] for r in rows] == [[0, 1], [1, 2], [2, 3], [3, 4]]
    assert [r["unit_id"] for r in rows][:2] == ["d:0-1", "d:1-2"]
    assert rows[1]["texts"] == ["text 1", "text 2"]
    assert all(r["doc_units"] == 4 for r in rows)


def test_document_units_streams():
    consumed = []

    def source():
        for page in pages(6):
            consumed.append(page.page)
            yield page

    first = next(document_units(source(), UnitsConfig(pages_per_unit=2)))
    assert first["pages"] == [0, 1]
    assert consumed == [0, 1]  # the first unit is out before page 2 is read


def test_page_layout_gives_one_unit_per_page_with_window_ids():
    rows = list(document_units(pages(3), UnitsConfig(layout="page", pages_per_unit=2)))
    assert [r["unit_id"] for r in rows] == ["d:0-0", "d:1-1", "d:2-2"]
    assert {r["layout"] for r in rows} == {"page"}
    assert all(r["doc_units"] == 3 for r in rows)


def test_window_layout_ids_are_unchanged():
    # Unit ids are the keys of journals and response caches: the window layout keeps them.
    rows = list(document_units(pages(5), UnitsConfig(pages_per_unit=2)))
    assert [r["unit_id"] for r in rows] == ["d:0-1", "d:2-3", "d:4-4"]
    assert {r["layout"] for r in rows} == {"window"}
    assert all(r["page_dups"] == [None] * len(r["pages"]) for r in rows)


def test_document_layout_splits_into_the_fewest_even_parts():
    cfg = UnitsConfig(layout="document", max_pages_per_unit=4, max_chars=100_000)
    one = list(document_units(pages(4), cfg))
    assert [r["pages"] for r in one] == [[0, 1, 2, 3]]
    # 10 pages, at most 4 per unit: 3 parts (not 4 + 4 + 2) of 3 or 4 pages.
    parts = [r["pages"] for r in document_units(pages(10), cfg)]
    assert len(parts) == 3
    assert sorted(len(p) for p in parts) == [3, 3, 4]
    assert [i for p in parts for i in p] == list(range(10))
    assert all(r["layout"] == "document" for r in document_units(pages(10), cfg))


def test_document_layout_splits_on_text_length():
    long_pages = [
        Page("d", "s.pdf", "document", i, 6, "x" * 900, "layer", b"", 1, 1) for i in range(6)
    ]
    cfg = UnitsConfig(layout="document", max_pages_per_unit=8, max_chars=2000)
    parts = [r["pages"] for r in document_units(long_pages, cfg)]
    assert parts == [[0, 1], [2, 3], [4, 5]]  # 5400 chars over 2000: 3 parts


def test_layout_weights_draw_per_document_and_are_stable():
    cfg = UnitsConfig(layout={"window": 1, "page": 1, "document": 1}, pages_per_unit=2)
    drawn = {}
    for n in range(60):
        doc = [
            Page(f"doc{n}", "s.pdf", "document", i, 4, "t", "layer", b"", 1, 1) for i in range(4)
        ]
        rows = list(document_units(doc, cfg))
        assert len({r["layout"] for r in rows}) == 1  # one layout per document
        drawn[f"doc{n}"] = rows[0]["layout"]
        again = list(document_units(doc, cfg))
        assert [r["unit_id"] for r in again] == [r["unit_id"] for r in rows]
    counts = {name: list(drawn.values()).count(name) for name in ("window", "page", "document")}
    assert all(count >= 10 for count in counts.values()), counts


def test_layout_config_errors_name_the_field():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="layout"):
        UnitsConfig(layout="chapters")
    with pytest.raises(ValidationError, match="positive sum"):
        UnitsConfig(layout={"window": 0})


def test_layout_draw_does_not_depend_on_key_order():
    forward = UnitsConfig(layout={"window": 2, "page": 1, "document": 1})
    backward = UnitsConfig(layout={"document": 1, "page": 1, "window": 2})
    docs = [f"doc{n}" for n in range(50)]
    assert [document_layout(d, forward) for d in docs] == [
        document_layout(d, backward) for d in docs
    ]
