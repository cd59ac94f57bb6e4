"""Reading the output folder of a finished run: its manifest and its sample shards, where they lie.

Everything that reads a run's results (the card, `curation stats`, `export`, `publish`, `view`)
comes through here, and takes no lock: writing a folder (claiming it, the lock that keeps a
second writer out) is `curation.outdir`'s, which never reads a run's results. The two are kept
apart so that a reader cannot take, or wait on, a writer's lock by accident.
"""

from __future__ import annotations

import json
from pathlib import Path

DATA_GLOB = "data/train-*.parquet"
REPORT_DIR = "report"  # the card's stats.json and plots, and the offline browser (site/)


class OutputFolderError(ValueError):
    """A folder that is not a finished output folder (no manifest.json, missing shards)."""


def read_manifest(out_dir: Path) -> dict:
    """The manifest of a finished run; OutputFolderError when the folder has none."""
    path = Path(out_dir) / "manifest.json"
    if not path.is_file():
        raise OutputFolderError(
            f"{out_dir}: no manifest.json here; expected the output folder of a finished "
            "`curation run` (e.g. out/<recipe>)"
        )
    return json.loads(path.read_text())


def data_files(out_dir: Path) -> list[Path]:
    """The sample shards in order."""
    return sorted(Path(out_dir).glob(DATA_GLOB))
