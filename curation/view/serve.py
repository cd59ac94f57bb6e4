"""Serve the site of an output folder on a local port, read-only (`curation view OUT`).

The site is built into a temporary folder (never inside OUT) and served with http.server:
GET and HEAD only, no directory listings, and no path that leads outside the site folder
(`..`, its encodings, absolute paths, backslashes, symlinks). A request for the app's page or
the overview rebuilds the site first when the output folder changed (a run moved on, or
finished), so reloading the page shows the latest state.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from curation.output.finished import REPORT_DIR
from curation.output.journal import JOURNAL
from curation.output.shards import FUNNEL_FILE
from curation.view.site import build_site

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Requests that rebuild a stale site first: the app's page and the overview it loads first.
REBUILD_ON = {"/", "/index.html", "/data/overview.js"}


def folder_stamp(folder: Path | None) -> tuple:
    """What changes when a run moves on or finishes, or a filter is run again: the manifest, the
    journal's chunks, the filter's funnel, the report's plots (name, size, mtime of each)."""
    if folder is None:
        return ()
    found = []
    paths = [folder / "manifest.json", *sorted((folder / JOURNAL).glob("chunk-*.arrow"))]
    paths.append(folder / FUNNEL_FILE)
    paths += sorted((folder / REPORT_DIR).glob("*.png"))
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        found.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(found)


class LiveSite:
    """A site built from an output folder, rebuilt when the folder changes."""

    def __init__(
        self, out_dir: Path, site: Path, compare: Path | None, max_samples: int | None
    ) -> None:
        self.out_dir, self.site, self.compare = Path(out_dir), site, compare
        self.max_samples = max_samples
        self.stamp: tuple | None = None
        self.lock = threading.Lock()
        self.builds = 0

    def refresh(self) -> None:
        """Build the site if it was never built or the folders changed since."""
        with self.lock:
            stamp = (folder_stamp(self.out_dir), folder_stamp(self.compare))
            if stamp == self.stamp:
                return
            build_site(self.out_dir, self.site, self.compare, self.max_samples)
            self.stamp = stamp
            self.builds += 1

    def refresh_or_keep(self) -> None:
        """Refresh; when that fails (the folder is being replaced), keep serving the last site."""
        try:
            self.refresh()
        except Exception as exc:  # any failure of a rebuild: the last site stays good
            print(f"warning: {self.out_dir}: site not rebuilt ({exc})", file=sys.stderr)


def refused(raw_path: str) -> HTTPStatus | None:
    """Why a request path may not be served (403), or None: a plain path inside the site."""
    path = raw_path.split("?", 1)[0].split("#", 1)[0]
    decoded = unquote(path)
    if not decoded.startswith("/") or decoded.startswith("//"):
        return HTTPStatus.FORBIDDEN
    if "\\" in decoded or "\0" in decoded or "%" in decoded:  # "%": encoded twice
        return HTTPStatus.FORBIDDEN
    if any(part in ("..", ".") or part.startswith(".") for part in decoded.split("/")):
        return HTTPStatus.FORBIDDEN  # also hidden files: the marker, a build folder
    return None


class SiteHandler(SimpleHTTPRequestHandler):
    """GET and HEAD of the files under the site folder, and nothing else."""

    live: LiveSite
    server_version = "curation-view"
    sys_version = ""

    def __init__(self, *args, live: LiveSite, **kwargs) -> None:
        self.live = live
        super().__init__(*args, directory=str(live.site), **kwargs)

    def inside(self) -> bool:
        """Answer a refused path (403, 404); True when the request may go on."""
        why = refused(self.path)
        if why is not None:
            self.send_error(why)
            return False
        relative = unquote(self.path.split("?", 1)[0].split("#", 1)[0]).lstrip("/")
        if self.path.split("?", 1)[0] in REBUILD_ON:
            self.live.refresh_or_keep()
        root = self.live.site.resolve()
        target = (root / relative).resolve()
        if target != root and not target.is_relative_to(root):  # a symlink out
            self.send_error(HTTPStatus.FORBIDDEN)
            return False
        if target.is_dir() and not (target / "index.html").is_file():
            self.send_error(HTTPStatus.NOT_FOUND)  # no listings
            return False
        return True

    def do_GET(self) -> None:
        if self.inside():
            super().do_GET()

    def do_HEAD(self) -> None:
        if self.inside():
            super().do_HEAD()

    def refuse_method(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = refuse_method

    def list_directory(self, path):
        self.send_error(HTTPStatus.NOT_FOUND)
        return None

    def end_headers(self) -> None:
        # The data files change when the site is rebuilt: always ask again.
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:
        pass  # quiet: the terminal shows the URL, not every request


class SiteServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, handler) -> None:
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), handler)


def site_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def _shutdown_on(stop: threading.Event, server: SiteServer) -> None:
    stop.wait()
    server.shutdown()


def serve(
    out_dir: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    compare: Path | None = None,
    on_ready: Callable[[str], None] | None = None,
    max_samples: int | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Build the site of `out_dir` into a temporary folder and serve it at host:port (0: a free
    port) until Ctrl-C, or until `stop` is set. Prints the URL, or hands it to `on_ready`."""
    if host not in LOCAL_HOSTS:
        print(
            f"warning: serving on {host}, not 127.0.0.1: the data of {out_dir} is then visible "
            "to the network",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory(prefix="curation-view-") as tmp:
        live = LiveSite(Path(out_dir), Path(tmp) / "site", compare, max_samples)
        live.refresh()
        server = SiteServer(host, port, partial(SiteHandler, live=live))
        url = site_url(host, server.server_address[1])
        if stop is not None:
            threading.Thread(target=_shutdown_on, args=(stop, server), daemon=True).start()
        try:
            if on_ready is not None:
                on_ready(url)
            else:
                print(f"serving {out_dir} at {url} (Ctrl-C to stop)", flush=True)
            server.serve_forever()
        finally:
            server.server_close()
