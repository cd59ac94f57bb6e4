"""OCR quality on born-digital pages, recognition and reading order measured apart.

Run: make bench-ocr   (or .venv/bin/python benchmarks/bench_ocr_quality.py --help)

Pages come from named Debian documentation packages, fetched with `apt-get download` and
unpacked with `dpkg-deb -x` into .cache/ocr-quality (never committed), four kinds:
- latex-manual: texlive-latex-base-doc (one-column LaTeX manuals);
- r-manual: r-doc-pdf (the R manuals, Texinfo/pdfTeX, lots of code);
- beamer-slides: the landscape Beamer decks of texlive-latex-recommended-doc and
  texlive-publishers-doc;
- two-column: two-column pages of texlive-publishers-doc (acmart, revtex, elsarticle, ...).
A page is used when its text layer is usable (ingest would not OCR it), long enough, and not
CJK (a bag of words needs words set apart by spaces).

The reference is the page's PyMuPDF text layer. Both texts are normalised the same way:
Unicode NFKC (ligatures such as "fi" and full-width forms spelled out), typographic quotes and
dashes as ASCII, case folded, a line-end hyphen before a lower-case letter joined ("hyphen-
ation" -> "hyphenation"). Metrics per page, pooled by kind (sums over pages, not means):
- characters: the multiset of non-space characters, recall = shared / reference, precision =
  shared / OCR;
- words: the bag of words (runs of letters and digits), recall and precision alike;
- body words: recall of the text layer's words of 3+ letters set in the page's body size
  (at least 0.8x the most used font size of the page) in a text (non-math) font;
- reading order: Kendall tau between the text layer's line order (content-stream order, which is
  LaTeX's reading order) and the product's OCR line order, over OCR lines matched one-to-one to
  a text-layer line (similarity >= 0.8); "raw" is the same for RapidOCR's own box order.
Every OCR result (lines, boxes, seconds) is cached per page and dpi in .cache/ocr-quality, so a
second run only adds what is missing (--fresh redoes them).

Speed: the pipeline's OCR path (ingest_document with ocr: always, then OCRStage with the
product's RapidOCRBackend) vs a plain loop (PyMuPDF render + a RapidOCR call), on the same
pages, in alternating rounds. Everything runs with one onnxruntime thread (--threads).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import platform
import random
import re
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pymupdf
from debian_docs import fetch

from curation.config import IngestConfig, UnitsConfig
from curation.ingest import ingest_document
from curation.ingest.ocr import RapidOCRBackend, ordered_rows
from curation.ingest.ocr_stage import OCRStage
from curation.ingest.pdf import render_ocr_image, render_page
from curation.ingest.quality import text_problem

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "ocr-quality"
PACKAGES = (
    "texlive-latex-base-doc",
    "r-doc-pdf",
    "texlive-latex-recommended-doc",
    "texlive-publishers-doc",
)
KINDS = ("latex-manual", "r-manual", "beamer-slides", "two-column")
MATH_FONT = re.compile(r"CMMI|CMSY|CMEX|MSAM|MSBM|Math|Symbol|rsfs|wasy|stmary|esint", re.I)
# Typographic quotes and dashes (and the minus sign) as their ASCII forms.
QUOTES = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'}
    | dict.fromkeys(["\u2013", "\u2014", "\u2212"], "-")
)
WORD = re.compile(r"[^\W_]+")
LEADERS = re.compile(r"(?:\.[ \t]*){4,}")  # a table of contents' dot leaders
HYPHENATED = re.compile(r"(?<=[^\W\d_])-[ \t]*\n[ \t]*(?=([^\W\d_]))")
MATCH_SIMILARITY = 0.8
SCAN_PAGES = 40  # pages looked at per document when picking


# ---------------------------------------------------------------- metrics (tests use these)


def normalise(text: str) -> str:
    """NFKC, ASCII quotes and dashes, dot leaders dropped, line-end hyphenation joined, case
    folded."""
    text = unicodedata.normalize("NFKC", text).translate(QUOTES)
    text = LEADERS.sub(" ", text)
    text = HYPHENATED.sub(lambda m: "" if m.group(1).islower() else m.group(0), text)
    return text.casefold()


def words(text: str) -> list[str]:
    """The words of normalised text: runs of letters and digits."""
    return WORD.findall(normalise(text))


def multiset_scores(reference: Counter, found: Counter) -> tuple[int, int, int]:
    """(shared, reference total, found total) of two multisets."""
    shared = sum((reference & found).values())
    return shared, sum(reference.values()), sum(found.values())


def char_counts(text: str) -> Counter:
    return Counter(c for c in normalise(text) if not c.isspace())


def kendall_tau(order: list[int]) -> float | None:
    """Kendall tau between positions 0..n-1 and `order` (distinct ranks); None below 2 items."""
    n = len(order)
    if n < 2:
        return None
    concordant = discordant = 0
    for i in range(n):
        for j in range(i + 1, n):
            if order[i] < order[j]:
                concordant += 1
            else:
                discordant += 1
    return (concordant - discordant) / (n * (n - 1) / 2)


def match_lines(
    reference: list[str], found: list[str], threshold: float = MATCH_SIMILARITY
) -> list[tuple[int, int]]:
    """One-to-one (found index, reference index) pairs of lines whose normalised texts are at
    least `threshold` similar (difflib ratio), the best pairs first; in `found` order."""
    ref = [" ".join(normalise(line).split()) for line in reference]
    ocr = [" ".join(normalise(line).split()) for line in found]
    candidates = []
    for i, a in enumerate(ocr):
        if len(a) < 3:
            continue
        for j, b in enumerate(ref):
            if len(b) < 3 or min(len(a), len(b)) < threshold * max(len(a), len(b)):
                continue
            matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
            if matcher.real_quick_ratio() < threshold or matcher.quick_ratio() < threshold:
                continue
            ratio = matcher.ratio()
            if ratio >= threshold:
                candidates.append((ratio, i, j))
    pairs, used_i, used_j = [], set(), set()
    for _, i, j in sorted(candidates, key=lambda c: (-c[0], c[1], c[2])):
        if i not in used_i and j not in used_j:
            pairs.append((i, j))
            used_i.add(i)
            used_j.add(j)
    return sorted(pairs)


@dataclass
class Reference:
    """A page's text layer: all its text, its lines in content-stream order, its body words."""

    text: str
    lines: list[str]
    body_words: list[str]


def reference_of(page: pymupdf.Page) -> Reference:
    """The text layer of a page (ligatures spelled out), for scoring OCR against it."""
    flags = (
        pymupdf.TEXTFLAGS_DICT & ~pymupdf.TEXT_PRESERVE_LIGATURES & ~pymupdf.TEXT_PRESERVE_IMAGES
    )
    line_spans = [
        line["spans"]
        for block in page.get_text("dict", flags=flags, sort=False)["blocks"]
        for line in block.get("lines", [])
        if "".join(span["text"] for span in line["spans"]).strip()
    ]
    sizes: Counter = Counter()
    for span in (span for spans in line_spans for span in spans):
        sizes[round(span["size"], 1)] += len(span["text"].strip())
    body_size = sizes.most_common(1)[0][0] if sizes else 0.0

    def body_text(span: dict) -> str:  # other text splits words instead of joining them
        if span["size"] >= 0.8 * body_size and not MATH_FONT.search(span["font"]):
            return span["text"]
        return " "

    lines = ["".join(span["text"] for span in spans) for spans in line_spans]
    # Whole lines, so that words hyphenated across lines are joined as in the full text.
    body = "\n".join("".join(body_text(span) for span in spans) for spans in line_spans)
    body_words = [word for word in words(body) if len(word) >= 3 and word.isalpha()]
    return Reference("\n".join(lines), lines, body_words)


def page_scores(ref: Reference, ocr_text: str, ordered: list[str], raw: list[str]) -> dict:
    """Counts for one page: characters, words, body words, and the reading-order taus."""
    chars = multiset_scores(char_counts(ref.text), char_counts(ocr_text))
    found_words = Counter(words(ocr_text))
    word_scores = multiset_scores(Counter(words(ref.text)), found_words)
    body_shared = sum((Counter(ref.body_words) & found_words).values())
    scores = {
        "chars": chars,
        "words": word_scores,
        "body": (body_shared, len(ref.body_words)),
        "lines": len(ordered),
    }
    for name, lines in (("order", ordered), ("raw_order", raw)):
        pairs = match_lines(ref.lines, lines)
        scores[name] = kendall_tau([j for _, j in pairs])
        scores[f"{name}_matched"] = len(pairs)
    return scores


# ---------------------------------------------------------------- corpus


def package_pdfs(package: str) -> list[Path]:
    return sorted(
        p
        for p in fetch(package, CACHE).rglob("*.pdf")
        if not p.is_symlink() and p.stat().st_size > 0
    )


def is_two_column(page: pymupdf.Page) -> bool:
    """At least 3 text blocks in each half of the page, each narrower than half of it."""
    width = page.rect.width
    blocks = [b for b in page.get_text("blocks") if b[6] == 0 and len(b[4]) > 80]
    narrow = [b for b in blocks if b[2] - b[0] < 0.48 * width]
    left = sum(1 for b in narrow if b[2] < 0.55 * width)
    right = sum(1 for b in narrow if b[0] > 0.45 * width)
    return left >= 3 and right >= 3


def page_kind(package: str, doc: pymupdf.Document, page: pymupdf.Page) -> str | None:
    """Which kind of page this is for the benchmark, or None to leave it out."""
    rect = page.rect
    landscape = rect.width > 1.15 * rect.height
    creator = (doc.metadata or {}).get("creator") or ""
    if "Beamer" in creator:
        return "beamer-slides" if landscape and rect.width < 600 else None
    if landscape or rect.width > 700:  # posters, leaflets, A3 exams
        return None
    if package == "r-doc-pdf":
        return "r-manual" if "/manual/" in doc.name and "fullrefman" not in doc.name else None
    if package == "texlive-latex-base-doc":
        return "latex-manual" if not is_two_column(page) else None
    if package == "texlive-publishers-doc" and is_two_column(page):
        return "two-column"
    return None


MIN_WORDS = {"beamer-slides": 15, "latex-manual": 150, "r-manual": 150, "two-column": 200}


def pick_pages(per_kind: int, seed: int = 0) -> list[dict]:
    """`per_kind` pages of each kind, round-robin over the documents (sorted), pages drawn
    at random (seeded) from each document's usable ones. Cached in the cache folder."""
    cached = CACHE / f"pages-{per_kind}-{seed}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    check = IngestConfig()
    candidates: dict[str, dict[str, list[int]]] = {kind: {} for kind in KINDS}
    for package in PACKAGES:
        root = fetch(package, CACHE)
        for path in package_pdfs(package):
            try:
                doc = pymupdf.open(path)
            except Exception:
                continue
            with doc:
                if doc.needs_pass or doc.page_count < 2:
                    continue
                for index in range(min(doc.page_count, SCAN_PAGES)):
                    page = doc[index]
                    kind = page_kind(package, doc, page)
                    if kind is None:
                        continue
                    text = page.get_text()
                    if len(text.split()) < MIN_WORDS[kind] or text_problem(text, check):
                        continue
                    if sum(1 for c in text if "\u3000" <= c <= "\u9fff") > 0.01 * len(text):
                        continue  # Chinese / Japanese: a bag of words needs spaces
                    key = f"{package}/{path.relative_to(root)}"
                    candidates[kind].setdefault(key, []).append(index)
    rng = random.Random(seed)
    chosen = []
    for kind in KINDS:
        queues = {doc: rng.sample(pages, len(pages)) for doc, pages in candidates[kind].items()}
        picked: list[dict] = []
        while len(picked) < per_kind and any(queues.values()):
            for doc in sorted(queues):
                if queues[doc] and len(picked) < per_kind:
                    picked.append({"kind": kind, "doc": doc, "page": queues[doc].pop()})
        chosen += picked
    cached.write_text(json.dumps(chosen, indent=1))
    return chosen


def pdf_path(item: dict) -> Path:
    return CACHE / "extracted" / item["doc"]


# ---------------------------------------------------------------- OCR runs


def ocr_page(item: dict, dpi: int, backend: RapidOCRBackend, fresh: bool) -> dict:
    """The product's OCR of one page rendered at `dpi` (cached): lines, text and seconds."""
    key = f"{item['doc']}#{item['page']}@{dpi}".replace("/", "_")
    cached = CACHE / "results" / f"{key}.json"
    if cached.exists() and not fresh:
        return json.loads(cached.read_text())
    with pymupdf.open(pdf_path(item)) as doc:
        page = doc[item["page"]]
        start = time.perf_counter()
        image = render_ocr_image(page, IngestConfig(ocr_dpi=dpi))
        result = backend.recognize(image)
        seconds = time.perf_counter() - start
    rows = ordered_rows(result.lines)
    out = {
        "seconds": seconds,
        "text": result.text,
        "ordered": [line.text for row in rows for line in row],
        "raw": [line.text for line in result.lines],
        "boxes": [list(line.box) for line in result.lines],
    }
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".tmp")
    partial.write_text(json.dumps(out))
    partial.rename(cached)  # a run stopped half-way leaves no broken result
    return out


def score_run(items: list[dict], dpi: int, backend: RapidOCRBackend, fresh: bool) -> list[dict]:
    rows = []
    for n, item in enumerate(items, 1):
        result = ocr_page(item, dpi, backend, fresh)
        with pymupdf.open(pdf_path(item)) as doc:
            ref = reference_of(doc[item["page"]])
        rows.append({**item, "dpi": dpi, "seconds": result["seconds"]})
        rows[-1].update(page_scores(ref, result["text"], result["ordered"], result["raw"]))
        if n % 20 == 0:
            print(f"  {dpi} dpi: {n}/{len(items)} pages", flush=True)
    return rows


def pooled(rows: list[dict]) -> dict:
    """Recall/precision pooled over pages, mean taus, seconds per page."""

    def ratio(name: str, index: int) -> float:
        shared = sum(r[name][0] for r in rows)
        total = sum(r[name][index] for r in rows)
        return shared / total if total else float("nan")

    taus = [r["order"] for r in rows if r["order"] is not None]
    raw = [r["raw_order"] for r in rows if r["raw_order"] is not None]
    matched = sum(r["order_matched"] for r in rows) / max(1, sum(r["lines"] for r in rows))
    return {
        "pages": len(rows),
        "char_recall": ratio("chars", 1),
        "char_precision": ratio("chars", 2),
        "word_recall": ratio("words", 1),
        "word_precision": ratio("words", 2),
        "body_recall": ratio("body", 1),
        "body_min": min(r["body"][0] / r["body"][1] for r in rows if r["body"][1]),
        "tau": float(np.mean(taus)) if taus else float("nan"),
        "raw_tau": float(np.mean(raw)) if raw else float("nan"),
        "matched": matched,
        "seconds": float(np.mean([r["seconds"] for r in rows])),
    }


# ---------------------------------------------------------------- speed: product vs plain loop


def speed_pdf(items: list[dict]) -> Path:
    """One PDF holding the speed pages, so ingest_document reads exactly those."""
    out = CACHE / f"speed-{len(items)}.pdf"
    with pymupdf.open() as merged:
        for item in items:
            with pymupdf.open(pdf_path(item)) as doc:
                merged.insert_pdf(doc, from_page=item["page"], to_page=item["page"])
        merged.save(out)
    return out


def product_round(pdf: Path, cfg: IngestConfig, stage: OCRStage) -> int:
    units = list(ingest_document(pdf, cfg, UnitsConfig(pages_per_unit=2)))
    return sum(len(u["pages"]) for u in stage(units))


def plain_round(pdf: Path, dpi: int, engine) -> int:
    pages = 0
    with pymupdf.open(pdf) as doc:
        for page in doc:
            pix = page.get_pixmap(dpi=dpi)
            array = np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.width, pix.n)
            engine(np.ascontiguousarray(array[:, :, ::-1]))  # RapidOCR reads arrays as BGR
            pages += 1
    return pages


def bench_speed(items: list[dict], ocr_dpi: int | None, rounds: int, threads: int) -> dict:
    from rapidocr import RapidOCR

    pdf = speed_pdf(items)
    cfg = IngestConfig(ocr="always", ocr_dpi=ocr_dpi, max_pages=None)
    stage = OCRStage(cfg, backend=RapidOCRBackend(threads=threads))
    engine = RapidOCR(
        params={
            "Global.log_level": "error",
            "Global.use_cls": False,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
    )
    dpi = ocr_dpi or cfg.dpi
    with pymupdf.open(pdf) as doc:  # warm both models up outside the timed rounds
        stage.backend.recognize(render_page(doc[0], cfg)[0])
        plain_round_page = doc[0].get_pixmap(dpi=dpi)
        del plain_round_page
    engine(np.full((64, 256, 3), 255, np.uint8))
    times: dict[str, float] = {"product": 0.0, "plain": 0.0}
    pages = {"product": 0, "plain": 0}
    for n in range(rounds):
        order = ("product", "plain") if n % 2 == 0 else ("plain", "product")
        for name in order:
            start = time.perf_counter()
            if name == "product":
                pages[name] += product_round(pdf, cfg, stage)
            else:
                pages[name] += plain_round(pdf, dpi, engine)
            times[name] += time.perf_counter() - start
    rates = {name: pages[name] / times[name] for name in times}
    return {
        "pages": len(items),
        "rounds": rounds,
        **rates,
        "ratio": rates["product"] / rates["plain"],
    }


# ---------------------------------------------------------------- report


def versions() -> str:
    from importlib.metadata import version

    return ", ".join(f"{name} {version(name)}" for name in ("PyMuPDF", "rapidocr", "onnxruntime"))


def table(results: dict[int, list[dict]]) -> str:
    head = (
        "| OCR dpi | kind | pages | char R / P | word R / P | body-word R (min page) | "
        "order tau (raw) | lines matched | s/page |\n|---|---|---|---|---|---|---|---|---|"
    )
    out = [head]
    for dpi, rows in sorted(results.items()):
        groups = [(kind, [r for r in rows if r["kind"] == kind]) for kind in KINDS]
        for kind, group in [*groups, ("all", rows)]:
            if not group:
                continue
            p = pooled(group)
            name = f"**{kind}**" if kind == "all" else kind
            out.append(
                f"| {dpi} | {name} | {p['pages']} | {p['char_recall']:.1%} / "
                f"{p['char_precision']:.1%} | {p['word_recall']:.1%} / {p['word_precision']:.1%} | "
                f"{p['body_recall']:.1%} ({p['body_min']:.0%}) | {p['tau']:.3f} "
                f"({p['raw_tau']:.3f}) | {p['matched']:.0%} | {p['seconds']:.1f} |"
            )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    parser.add_argument(
        "--pages-per-kind", type=int, default=50, help="Pages of each kind at --dpi."
    )
    parser.add_argument(
        "--dpi", type=int, default=150, help="The main OCR dpi (all pages; the ingest default)."
    )
    parser.add_argument(
        "--sweep", default="100,200,300", help="Other OCR dpis, comma-separated ('' for none)."
    )
    parser.add_argument(
        "--sweep-pages-per-kind", type=int, default=4, help="Pages of each kind at the sweep dpis."
    )
    parser.add_argument(
        "--speed-pages-per-kind", type=int, default=1, help="Pages per kind, speed."
    )
    parser.add_argument("--speed-rounds", type=int, default=4, help="Alternating rounds (speed).")
    parser.add_argument(
        "--speed-ocr-dpi", type=int, default=None, help="ingest.ocr_dpi for the speed run."
    )
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model.")
    parser.add_argument("--fresh", action="store_true", help="Redo cached OCR results.")
    parser.add_argument("--json", type=Path, help="Also write every per-page row here.")
    args = parser.parse_args()

    items = pick_pages(args.pages_per_kind)
    backend = RapidOCRBackend(threads=args.threads)
    results = {args.dpi: score_run(items, args.dpi, backend, args.fresh)}
    sweep = [int(d) for d in args.sweep.split(",") if d.strip()]
    subset = [
        item
        for kind in KINDS
        for item in [i for i in items if i["kind"] == kind][: args.sweep_pages_per_kind]
    ]
    for dpi in sweep:
        results[dpi] = score_run(subset, dpi, backend, args.fresh)
    if len(sweep):  # the main dpi on the sweep's pages too, to compare like with like
        keys = {(i["doc"], i["page"]) for i in subset}
        same = [r for r in results[args.dpi] if (r["doc"], r["page"]) in keys]
    speed = None
    if args.speed_rounds:
        speed_items = [
            item
            for kind in KINDS
            for item in [i for i in items if i["kind"] == kind][: args.speed_pages_per_kind]
        ]
        speed = bench_speed(speed_items, args.speed_ocr_dpi, args.speed_rounds, args.threads)

    docs = Counter((i["kind"], i["doc"].split("/")[0]) for i in items)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, no GPU; {versions()}")
    print(f"threads: {args.threads} onnxruntime thread(s) per model")
    print("pages:", ", ".join(f"{kind} {n} ({pkg})" for (kind, pkg), n in sorted(docs.items())))
    print(f"documents: {len({i['doc'] for i in items})}")
    print()
    print(table({args.dpi: results[args.dpi]}))
    if sweep:
        print(f"\nSweep ({len(subset)} pages, {args.sweep_pages_per_kind} per kind):\n")
        print(table({args.dpi: same, **{d: results[d] for d in sweep}}))
    if speed:
        print(
            f"\nSpeed, {speed['pages']} pages x {speed['rounds']} alternating rounds "
            f"(ocr_dpi {args.speed_ocr_dpi}): pipeline OCR path {speed['product']:.3f} pages/s, "
            f"plain RapidOCR loop {speed['plain']:.3f} pages/s = {speed['ratio']:.2f}x"
        )
    if args.json:
        args.json.write_text(json.dumps({str(d): r for d, r in results.items()}, indent=1))


if __name__ == "__main__":
    main()
