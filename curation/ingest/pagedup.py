"""Page dedup across documents: pages that repeat an earlier page of the run (cover, licence and
template pages) are marked, and a unit made only of such pages is skipped before generation.

A page's signature is a 64-bit perceptual hash of a low-resolution render (`imagehash.phash`),
a hash of its normalized text and a hash of its pixels. A page repeats an earlier one (input
order: documents in order, pages in order) when their texts are the same and their images are
near (at most `max_distance` differing hash bits). Pages of one template look alike but say
different things, so the text must match too. A page whose text layer does not describe it (no
text, too short, garbled, a scan: what ingest would OCR) has only its image to go by, and two
scans of different pages can have near hashes: such a page matches only identical pixels.

Pages are compared only with earlier pages of the same text, one by one while a text has few,
and by the banded Hamming search of `curation.hamming` once it has many (one template text on
thousands of pages): only pages that share a band of the 64 bits are compared. Only pages that repeat
nothing are indexed: a duplicate points at an original page, and thousands of identical cover
pages keep one entry. (A page near a duplicate but farther from its original is an original.)
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from pathlib import Path

import imagehash
from PIL import Image

from curation.config import IngestConfig
from curation.files import write_atomic
from curation.hamming import BandBuckets
from curation.ingest.errors import IngestError
from curation.ingest.quality import LAYER
from curation.ingest.remote import is_uri, staged
from curation.seeding import content_id

# Bump when what a signature is made of changes: cached signatures of another version are unused.
# 2: a blank page's text layer is used as it is (no OCR), so a short one makes it `textual`.
SIGNATURE_VERSION = 2
# The pre-pass render's longest side: phash reads a 32 x 32 reduction of it.
PASS_MAX_SIDE = 512
EMPTY_TEXT = "empty"
SKIP_REASON = "duplicate_pages"
# Settings that do not change a page's signature (left out of the cache key).
UNSIGNED_SETTINGS = {
    "page_dedup",
    "ocr_workers",
    "ocr_backend",
    "ocr_model_dir",
    "convert_timeout_s",
}


@dataclass(frozen=True)
class PageSignature:
    """What page dedup knows of one page."""

    page: int  # 0-based
    phash: int  # 64-bit perceptual hash of the page image
    text: str  # hash of the normalized text, or EMPTY_TEXT
    pixels: str  # hash of the rendered pixels
    textual: bool  # the text layer describes the page (ingest uses it as is: no OCR)


def normalized_text(text: str) -> str:
    """Whitespace collapsed, lowercased: a re-flowed or re-cased copy reads the same."""
    return " ".join(text.split()).lower()


def text_hash(text: str) -> str:
    normal = normalized_text(text)
    return hashlib.sha256(normal.encode()).hexdigest()[:16] if normal else EMPTY_TEXT


def page_signature(
    image: bytes | Image.Image, text: str, page: int = 0, textual: bool = True
) -> PageSignature:
    """The signature of a page from its image (encoded bytes or a PIL image) and its text;
    `textual` False: its text layer does not describe it, so only identical pixels match it."""
    if isinstance(image, bytes):
        image = Image.open(io.BytesIO(image))
    rgb = image.convert("RGB")
    pixels = hashlib.sha256(f"{rgb.width}x{rgb.height}".encode() + rgb.tobytes()).hexdigest()
    return PageSignature(
        page=page,
        phash=int(str(imagehash.phash(rgb)), 16),
        text=text_hash(text),
        pixels=pixels[:16],
        textual=textual and bool(normalized_text(text)),
    )


def pass_config(ingest: IngestConfig) -> IngestConfig:
    """The ingest settings of the pre-pass: a small PNG render; ocr auto, so that a page whose
    text layer is unusable reads `pending_ocr` (no OCR runs here: it is a later stage)."""
    return ingest.model_copy(
        update={
            "dpi": ingest.page_dedup.dpi,
            "max_image_side": min(PASS_MAX_SIDE, ingest.max_image_side),
            "image_format": "png",
            "grayscale": False,
            "ocr": "auto",
        }
    )


def settings_key(ingest: IngestConfig) -> str:
    """What the signatures of a document depend on besides its bytes."""
    settings = pass_config(ingest).model_dump(mode="json", exclude=UNSIGNED_SETTINGS)
    settings["ocr"] = ingest.ocr  # always: no page is textual
    return content_id(SIGNATURE_VERSION, json.dumps(settings, sort_keys=True), length=12)


def document_signatures(path: Path, doc_id: str, ingest: IngestConfig) -> list[PageSignature]:
    """The signatures of a document's pages (as many as ingest reads: at most max_pages), read
    with the same readers as ingest at the pre-pass resolution. A document that fails part way
    has the signatures of the pages read before (ingest records the failure)."""
    from curation.ingest import iter_pages  # the package imports this module

    cfg = pass_config(ingest)
    textual_ok = ingest.ocr != "always"  # then every page's text comes from OCR
    signatures: list[PageSignature] = []
    with contextlib.suppress(Exception):  # ingest itself reports why; dedup only loses pages
        for page in iter_pages(path, doc_id, cfg):
            textual = textual_ok and page.text_source == LAYER
            signatures.append(page_signature(page.image, page.text, page.page, textual))
    return signatures


class SignatureCache:
    """A document's signatures as `<folder>/<doc_id>-<settings key>.json`, written whole."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    def path(self, doc_id: str, key: str) -> Path:
        return self.folder / f"{doc_id}-{key}.json"

    def get(self, doc_id: str, key: str) -> list[PageSignature] | None:
        try:
            rows = json.loads(self.path(doc_id, key).read_text())["pages"]
            return [PageSignature(*row) for row in rows]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, doc_id: str, key: str, signatures: list[PageSignature]) -> None:
        """Store them; a folder this node cannot write to only means no cache here."""
        blob = {"doc_id": doc_id, "pages": [list(astuple(s)) for s in signatures]}
        with contextlib.suppress(OSError):
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path(doc_id, key), json.dumps(blob).encode())


def signatures_of(
    path: Path | str, ingest: IngestConfig, cache_dir: str | None = None
) -> tuple[str, list[PageSignature]]:
    """(doc_id, page signatures) of one input (a path, or a URI copied first), from the cache
    when it has them."""
    from curation.ingest import document_id

    if is_uri(path):
        try:
            with staged(path, ingest.max_file_mb) as local:
                return signatures_of(local, ingest, cache_dir)
        except IngestError:
            return content_id("unreadable", path), []
    path = Path(path)
    doc_id, key = document_id(path), settings_key(ingest)
    cache = SignatureCache(cache_dir) if cache_dir else None
    found = cache.get(doc_id, key) if cache else None
    if found is None:
        found = document_signatures(path, doc_id, ingest)
        if cache:
            cache.put(doc_id, key, found)
    return doc_id, found


class PageIndex:
    """The original pages seen so far (none that repeats another), for the page-by-page search:
    by text and pixels, and per text the textual pages' hashes, compared one by one while a
    text has few, by band once it has more than SCAN_LIMIT (one template, many pages)."""

    SCAN_LIMIT = 16

    def __init__(self, max_distance: int) -> None:
        self.max_distance = max_distance
        self.exact: dict[tuple[str, str], tuple[int, str]] = {}
        self.near: dict[str, list[tuple[int, int, str]]] = {}
        self.banded: dict[str, BandBuckets[tuple[int, str]]] = {}

    def match(self, sig: PageSignature) -> str | None:
        """The first original (in input order) that `sig` repeats, as "doc_id:page", or None."""
        found = [self.exact[(sig.text, sig.pixels)]] if (sig.text, sig.pixels) in self.exact else []
        if sig.textual and sig.text in self.near:
            bands = self.banded.get(sig.text)
            if bands is None:
                found += [
                    (at, ref)
                    for at, phash, ref in self.near[sig.text]
                    if (phash ^ sig.phash).bit_count() <= self.max_distance
                ]
            else:
                found += bands.near(sig.phash)
        return min(found)[1] if found else None

    def add(self, sig: PageSignature, position: int, ref: str) -> None:
        """Index an original page (`position`: its place in input order)."""
        self.exact[(sig.text, sig.pixels)] = (position, ref)
        if not sig.textual:
            return
        pages = self.near.setdefault(sig.text, [])
        pages.append((position, sig.phash, ref))
        if sig.text in self.banded:
            self.banded[sig.text].add(sig.phash, (position, ref))
        elif len(pages) > self.SCAN_LIMIT:
            bands = self.banded[sig.text] = BandBuckets(64, self.max_distance)
            for at, phash, page_ref in pages:
                bands.add(phash, (at, page_ref))


def find_duplicates(
    documents: Sequence[tuple[str, Sequence[PageSignature]]], max_distance: int = 4
) -> list[dict[int, str]]:
    """For each document ((doc_id, signatures), in input order): {page: "doc_id:page"} of its
    pages that repeat an earlier page, each pointing at the first earlier original it repeats.

    Same text hash, and: both textual with phash at most max_distance bits apart, or the same
    pixels. Documents with the same doc_id (one file under two names) are separate inputs."""
    index = PageIndex(max_distance)
    found: list[dict[int, str]] = []
    position = 0
    for doc_id, signatures in documents:
        repeats: dict[int, str] = {}
        for sig in signatures:
            position += 1
            match = index.match(sig)
            if match:
                repeats[sig.page] = match
            else:
                index.add(sig, position, f"{doc_id}:{sig.page}")
        found.append(repeats)
    return found


def mark_unit(row: dict, page_dups: dict[int, str] | None) -> dict:
    """A Unit row with `page_dups` set per page (when one of its pages repeats an earlier one)
    and, when every page does, `skipped`: the unit gets no LLM call."""
    if not page_dups or row.get("error_code") is not None or not row["pages"]:
        return row
    dups = [page_dups.get(page) for page in row["pages"]]
    if not any(dups):
        return row
    row = {**row, "page_dups": dups}
    if all(dups):
        shown = ", ".join(dups[:4]) + (f", ... ({len(dups) - 4} more)" if len(dups) > 4 else "")
        row["skipped"] = f"{SKIP_REASON}: every page repeats an earlier one ({shown})"
    return row


def dups_to_json(page_dups: dict[int, str]) -> str:
    """A document's duplicate pages as a string column value (Ray Data rows of one type)."""
    return json.dumps({str(page): ref for page, ref in sorted(page_dups.items())})


def dups_from_json(text: str | None) -> dict[int, str]:
    return {int(page): ref for page, ref in json.loads(text or "{}").items()}
