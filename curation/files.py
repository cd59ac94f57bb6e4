"""Files: written whole (a reader sees the old bytes or the new ones, never a torn file), their
names as text, and what a path names before anything opens it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

# The kinds of file a path may name that are never read as an input: opening a FIFO waits for a
# writer, a device (/dev/zero, /dev/random) never ends.
SPECIAL_FILES = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a private temporary file, synced, then renamed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def path_text(path: str | os.PathLike) -> str:
    """A file name (or a message that may quote one) as text for a record (manifest, Arrow rows,
    summary), the one rule for all of them: a name that is not valid UTF-8 (raw bytes on Linux,
    which Python holds as surrogates) shows its odd bytes escaped (`bad\\xff.pdf`); any other
    name is unchanged. The file itself is always opened by its real name."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def name_is_text(path: str | os.PathLike) -> bool:
    """Whether a file name is valid UTF-8: libraries that take names as UTF-8 text (MuPDF,
    pyarrow) can open it by name; any other name is opened by Python, by its real bytes."""
    return path_text(path) == os.fspath(path)


def path_problem(path: Path) -> tuple[str, str] | None:
    """Why `path` cannot be read as an input, as (code, message): `missing` (nothing there, or a
    link to nothing), `unreadable` (the system refuses to say), `not_a_file` (a FIFO, a device,
    a socket); None for a regular file or a folder. Only `stat` looks at it: nothing is opened."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            return "missing", f"a link to {path_text(os.readlink(path))}, which does not exist"
        return "missing", "no such file or folder"
    except OSError as exc:
        return "unreadable", f"cannot look at it: {exc.strerror or exc}"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kind = next((name for test, name in SPECIAL_FILES if test(mode)), "not a regular file")
    if path.is_symlink():
        kind += f" (a link to {path_text(os.readlink(path))})"
    return "not_a_file", f"{kind}: not a regular file, so it is not read"


def largest_first(paths: list[Path | str]) -> list[Path | str]:
    """`paths` in the order the graph takes them: the largest first (the bytes of a file, or of
    the files in a folder of page images), ties and URIs (whose size would cost a request each)
    in their given order after the local ones. A document is one task, so the last one to start
    runs alone while the other cores idle: started last, a 224-page manual held one core for
    the run's last 7 s. The dataset's order is the inputs' order whatever this one is (the
    journal's assembly sorts by input)."""
    return sorted(paths, key=lambda path: -bytes_on_disk(path))


def bytes_on_disk(path: Path | str) -> int:
    """The bytes `largest_first` orders by; 0 for a URI or what cannot be looked at."""
    if not isinstance(path, Path):
        return 0
    try:
        if path.is_dir():
            return sum(entry.stat().st_size for entry in path.iterdir() if entry.is_file())
        return path.stat().st_size
    except OSError:
        return 0
