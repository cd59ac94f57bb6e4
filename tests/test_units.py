from curation.config import UnitsConfig
from curation.schema import Page
from curation.units import unit_windows, window_pages


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


def test_window_pages_groups_in_order():
    rows = list(window_pages(pages(5), UnitsConfig(pages_per_unit=2, overlap=1)))
    assert [r["pages"] for r in rows] == [[0, 1], [1, 2], [2, 3], [3, 4]]
    assert [r["unit_id"] for r in rows][:2] == ["d:0-1", "d:1-2"]
    assert rows[1]["texts"] == ["text 1", "text 2"]
    assert all(r["doc_units"] == 4 for r in rows)


def test_window_pages_streams():
    consumed = []

    def source():
        for page in pages(6):
            consumed.append(page.page)
            yield page

    first = next(window_pages(source(), UnitsConfig(pages_per_unit=2)))
    assert first["pages"] == [0, 1]
    assert consumed == [0, 1]  # the first unit is out before page 2 is read
