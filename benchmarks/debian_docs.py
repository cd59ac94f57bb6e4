"""Real documents the project did not make: Debian documentation packages, fetched with
`apt-get download` and unpacked with `dpkg-deb -x` into a cache folder (never committed)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def fetch(package: str, cache: Path) -> Path:
    """The package's files, downloaded and unpacked once into cache/extracted/<package>
    (unpacked beside it, then renamed: an interrupted unpack is never taken for a whole one)."""
    target = cache / "extracted" / package
    if not target.exists():
        debs = cache / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        if not list(debs.glob(f"{package}_*.deb")):
            subprocess.run(["apt-get", "download", package], cwd=debs, check=True)
        deb = next(debs.glob(f"{package}_*.deb"))
        tmp = target.with_suffix(".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)  # dpkg-deb makes the last folder only
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
        tmp.rename(target)
    return target
