"""Screenshots of `curation view` for the README: docs/img/view-{overview,samples,rejects,errors}.png
(and view-compare.png with --compare).

Builds the site of an output folder (out/docmatix, written by `make recipes`) into a temporary
folder, opens it from file:// in Debian's Chromium, headless, through Playwright (the system's
build: never `playwright install`), and saves each page as the browser shows it.

    .venv/bin/python benchmarks/screenshots.py [--out out/docmatix] [--compare OTHER]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from curation.view.site import build_site

PAGES = [
    ("overview", "overview"),
    ("samples", "samples"),
    ("rejects", "rejects"),
    ("errors", "errors"),
]
READY = """() => {
    const view = document.getElementById("view");
    return view.hasAttribute("data-ready") && !view.classList.contains("loading")
        && [...document.images]
            .filter(img => img.getBoundingClientRect().top < innerHeight)
            .every(img => img.complete);
}"""


def chromium() -> str:
    found = os.environ.get("CURATION_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).is_file():
        sys.exit(
            f"no Chromium at {found}: `make system-deps` installs it (or set CURATION_CHROMIUM)"
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/docmatix"), help="output folder")
    parser.add_argument("--compare", type=Path, help="a second output folder to compare with")
    parser.add_argument("--dest", type=Path, default=Path("docs/img"), help="where the PNGs go")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=860)
    args = parser.parse_args()
    if not (args.out / "manifest.json").is_file():
        sys.exit(f"{args.out}: no finished output folder here; `make recipes` builds out/docmatix")
    compare = args.compare if args.compare and args.compare.is_dir() else None
    if args.compare and compare is None:
        print(f"warning: {args.compare} not found; no comparison", file=sys.stderr)

    from playwright.sync_api import sync_playwright

    pages = PAGES + ([("compare", "compare")] if compare else [])
    args.dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="curation-screens-") as tmp:
        site = Path(tmp) / "site"
        build_site(args.out, site, compare=compare)
        url = (site / "index.html").as_uri()
        with sync_playwright() as driver:
            browser = driver.chromium.launch(
                executable_path=chromium(), headless=True, args=["--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            for name, route in pages:
                page.goto(f"{url}#/{route}")
                page.wait_for_function(READY, timeout=30_000)
                target = args.dest / f"view-{name}.png"
                # A short page (no errors) is cut to its content, not padded to the window.
                height = page.evaluate(
                    "() => Math.ceil(document.getElementById('view').getBoundingClientRect().bottom)"
                )
                clip = {
                    "x": 0,
                    "y": 0,
                    "width": args.width,
                    "height": min(args.height, height + 16),
                }
                page.screenshot(path=str(target), clip=clip)
                print(f"wrote {target}")
            browser.close()


if __name__ == "__main__":
    main()
