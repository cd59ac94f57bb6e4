"""Output folders: whose they are, and who is writing one now.

Every command that writes (`run`, `filter`, `export`, `train`) claims its folder before any other
work: the folder must be missing, empty, or marked by this tool for the same command (`MARKER`,
written first, so even a run killed before its first output resumes). A lock file (`LOCK`) keeps
a second writer out while the first works; a lock whose process is gone from this host is taken
over. `publish` takes the lock alone (`FolderLock`): it writes the card into a run's folder, and
uploads it, with no run rewriting the shards meanwhile. Readers (`stats`, `view`) take neither.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from curation.config import ConfigError
from curation.files import write_atomic

TOOL = "curation"
MARKER = ".curation.json"
LOCK = ".lock"

log = logging.getLogger(__name__)


class FolderRefused(ConfigError):
    """An output folder this tool may not write: someone else's, another command's, or one that
    another run is writing; the message names the folder and why."""


def read_json(path: Path) -> dict | None:
    """A small JSON object file, or None when it is missing, unreadable or not an object."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def is_ours(path: Path) -> bool:
    """True for this tool's marker or lock file, or one being written (`NAME.PID.tmp`)."""
    name = path.name
    named = name in (MARKER, LOCK) or (
        name.startswith((f"{MARKER}.", f"{LOCK}.")) and name.endswith(".tmp")
    )
    return named and (read_json(path) or {}).get("tool") == TOOL


def check_owned(folder: Path, command: str) -> None:
    """Raise FolderRefused unless `folder` is missing, empty, or marked by `curation command`."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise FolderRefused(f"{folder}: not a folder; choose a new or empty folder for the output")
    marker = read_json(folder / MARKER)
    if marker is not None and marker.get("tool") == TOOL:
        if marker.get("command") != command:
            raise FolderRefused(
                f"{folder}: holds the output of `curation {marker.get('command')}` ({MARKER}); "
                f"`curation {command}` writes only into a new or empty folder or one of its own: "
                "choose another folder"
            )
        return
    foreign = sorted(p.name for p in folder.iterdir() if not is_ours(p))
    if foreign:
        raise FolderRefused(
            f"{folder}: holds files curation did not write ({some_of(foreign)}); "
            f"`curation {command}` writes only into a new or empty folder or one it wrote (marked by {MARKER}), and "
            "never touches anything else: choose a new or empty folder"
        )


def some_of(names: list[str], shown: int = 3) -> str:
    """The first names, and how many more there are."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def holder_text(holder: dict) -> str:
    return (
        f"`curation {holder.get('command')}` on host {holder.get('host')}, PID {holder.get('pid')}, "
        f"started {holder.get('started')}"
    )


def process_gone(pid: object) -> bool:
    """True when no process of this id runs on this host."""
    if not isinstance(pid, int) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's process: alive
        return False
    return False


@contextlib.contextmanager
def folder_guard(folder: Path) -> Iterator[None]:
    """An exclusive flock on the folder itself: serialises takeovers of a stale lock on a host."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


class FolderLock:
    """Context manager that holds a folder's lock file (`LOCK`) for one command: a second writer
    is refused naming this one, and a lock whose process is gone from this host is taken over.
    The folder must exist; the lock claims nothing (`OutputFolder` does that)."""

    def __init__(self, folder: Path, command: str) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.mine = {
            "tool": TOOL,
            "command": command,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        self.took_over: dict | None = None  # the stale lock this one replaced

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        # Written whole under a private name, then linked into place: link fails when a lock
        # exists, so a lock file is never seen half-written.
        tmp = self.folder / f"{LOCK}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(self.mine) + "\n")
        try:
            while True:
                try:
                    os.link(tmp, self.path)
                    return
                except FileExistsError:
                    self._take_over_if_stale()
        finally:
            tmp.unlink()

    def _take_over_if_stale(self) -> None:
        """Remove a lock whose process is gone from this host; refuse a live one."""
        with folder_guard(self.folder):
            holder = read_json(self.path)
            if holder is None:
                if self.path.exists():
                    raise FolderRefused(
                        f"{self.path}: a lock file curation cannot read; remove it if no "
                        "curation command is writing this folder"
                    )
                return  # released meanwhile: try again
            # A lock naming this very process is a dead one's whose PID came round again.
            pid, here = holder.get("pid"), holder.get("host") == self.mine["host"]
            if not here or (pid != self.mine["pid"] and not process_gone(pid)):
                raise FolderRefused(
                    f"{self.folder}: another command is writing this folder: "
                    f"{holder_text(holder)} ({self.path}); wait for it to finish or stop it"
                )
            self.path.unlink()
        self.took_over = holder
        log.warning(
            "%s: took over the lock of %s, which is no longer running",
            self.folder,
            holder_text(holder),
        )

    def release(self) -> None:
        holder = read_json(self.path) or {}
        if holder.get("pid") == self.mine["pid"] and holder.get("host") == self.mine["host"]:
            self.path.unlink()


class OutputFolder:
    """Context manager that claims an output folder for one command and holds its lock."""

    def __init__(self, folder: Path, command: str, recipe_hash: str | None = None) -> None:
        self.folder, self.command, self.recipe_hash = Path(folder), command, recipe_hash
        self.lock = FolderLock(self.folder, command)
        self.created: list[Path] = []  # the folders this claim made, deepest first

    @property
    def took_over(self) -> dict | None:
        """The stale lock this claim replaced, if any."""
        return self.lock.took_over

    def __enter__(self) -> OutputFolder:
        check_owned(self.folder, self.command)  # before touching anything in it
        self.created = [p for p in (self.folder, *self.folder.parents) if not p.exists()]
        self.folder.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()
        try:
            check_owned(self.folder, self.command)  # another command may have claimed it since
            self._write_marker()
        except BaseException:
            self.lock.release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.lock.release()
        # A start that failed before any output (a bad recipe) leaves no folder behind.
        if self.created and [p.name for p in self.folder.iterdir()] == [MARKER]:
            (self.folder / MARKER).unlink()
            for folder in self.created:
                folder.rmdir()

    def _write_marker(self) -> None:
        marker = self.folder / MARKER
        previous = read_json(marker) or {}
        content = {
            "tool": TOOL,
            "command": self.command,
            "recipe_hash": self.recipe_hash,
            "created": previous.get("created") or self.lock.mine["started"],
        }
        write_atomic(marker, (json.dumps(content, indent=1) + "\n").encode())
