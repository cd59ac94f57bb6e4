"""The OCR stage: fill in the text of Unit pages marked pending_ocr, with a backend loaded once."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from curation.config import IngestConfig
from curation.ingest.errors import IngestError
from curation.ingest.ocr import OCRBackend, build_ocr_backend
from curation.ingest.quality import OCR, OCR_FAILED, PENDING_OCR, without_ocr
from curation.ingest.slides import NOTES_HEADING


class OCRStage:
    """Runs OCR on every page whose text layer was missing or garbled (text_source pending_ocr)."""

    def __init__(self, cfg: IngestConfig, backend: OCRBackend | None = None) -> None:
        self.cfg = cfg
        self._backend = backend

    @property
    def backend(self) -> OCRBackend:
        if self._backend is None:  # loaded on first use: units with a good text layer need none
            self._backend = build_ocr_backend(self.cfg)
        return self._backend

    def __call__(self, units: list[dict]) -> list[dict]:
        """The same Unit rows, with OCR text, text_source 'ocr' and a confidence where needed."""
        for unit in units:
            # Pages rendered for OCR at ingest.ocr_dpi (schema.OCR_UNIT_SCHEMA); None: the image.
            ocr_images = unit.pop("ocr_images", None) or []
            if unit.get("skipped"):  # no LLM call is made for it: its text is not needed
                continue
            for index, source in enumerate(unit["text_sources"]):
                if source == PENDING_OCR:
                    image = ocr_images[index] if index < len(ocr_images) else None
                    self._ocr_page(unit, index, image or unit["images"][index])
        return units

    def _ocr_page(self, unit: dict, index: int, image: bytes) -> None:
        try:
            result = self.backend.recognize(image)
        except IngestError:
            # The page stays, with its image and whatever text layer it had; the source says why.
            unit["text_sources"][index] = OCR_FAILED
            return
        if result.text.strip():
            # Speaker notes come from the deck, not the page: they stay after the OCR text.
            old = unit["texts"][index]
            notes = old[old.index(NOTES_HEADING) :] if NOTES_HEADING in old else ""
            unit["texts"][index] = result.text + notes
            unit["text_sources"][index] = OCR
            unit["ocr_scores"][index] = result.score
        else:
            unit["text_sources"][index] = without_ocr(unit["texts"][index])


def pending_ocr(units: pa.Table) -> bool:
    """Whether any page of these Unit rows waits for OCR (text_source pending_ocr)."""
    sources = pc.list_flatten(units.column("text_sources"))
    return bool(pc.any(pc.equal(sources, PENDING_OCR)).as_py())
