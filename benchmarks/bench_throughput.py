"""Throughput around a free LLM (issue 32): how fast the whole `curation run` goes when the LLM
costs nothing, against a bare PyMuPDF read + render loop over the same pages.

Run: make bench-throughput   (or .venv/bin/python benchmarks/bench_throughput.py [--pages N]
     [--profile FILE])

On N real pages (Debian's LaTeX documentation, cached in .cache/bench-pdfs as for
bench_ingest.py; whole files in order until N pages), the shipped default chain and the
`openai` engine, against `free_llm_reply` served over real HTTP by tests/scripted_server.py in a
process of its own. That server is a benchmark-only STAND-IN for `vllm serve`: it answers every
request at once with pairs copied from the prompt's pages, so the run measures everything but
the LLM. Prints, as Markdown for docs/benchmarks.md:
- pages/s of the run (whole, and after its start-up: Ray's start and its workers' until the
  first task's code runs, read from Ray's task timeline), of a bare two-process PyMuPDF loop
  (text blocks + a PNG at the recipe's dpi per page) over the files in their order, as the
  issue measured it, and over the largest first, as the run takes them; and their ratios;
- when the first block was journaled (the first results a user sees);
- the pages that went to OCR;
- the CPU seconds of the driver and of every Ray process (the machine is shared: CPU time is
  what to compare between runs, wall time moves with other people's jobs);
- Ray Data's per-operator wall and CPU time (the dataset's stats), and the driver's phases:
  Ray start, page dedup, the graph (and the journal's writes inside it), assembly with the
  whole-dataset dedup, the shard writer's close, the dataset card.
`--profile FILE` writes a cProfile of the driver's whole run (pstats format); `--timeline FILE`
Ray's task timeline (chrome://tracing JSON); `--rounds N` runs N rounds, each in a fresh process
(the bare loops, then the run), and prints each round's whole run, start-up, first block, bare
rate and ratios with their medians: this machine's speed drifts from run to run, so one round
says little.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import multiprocessing
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import psutil
import pymupdf
import ray
import yaml
from bench_ingest import fetch_corpus

import curation.pipeline
import curation.run
from curation.config import Recipe
from curation.files import largest_first
from curation.output.journal import Journal
from curation.output.shards import DatasetWriter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from scripted_server import message_text, scripted_server  # noqa: E402


def free_llm_reply(messages: list[dict]) -> str:
    """The stand-in LLM: for each pair asked, a question naming the first words of a sentence of
    the prompt's pages and that sentence as the answer (grounded by construction)."""
    text = message_text(messages)
    asked = text.rsplit("Write ", 1)[-1].split(" ", 1)[0]
    n_pairs = int(asked) if asked.isdigit() else 4
    sentences = []
    for line in text.split("--- Page ", 1)[-1].splitlines():
        words = line.split()
        if len(words) >= 6 and not line.startswith("--- Page"):
            sentences.append(" ".join(words))
    if not sentences:
        return "unanswerable"
    pairs = []
    for i, sentence in enumerate(sentences[:n_pairs], start=1):
        topic = " ".join(sentence.split()[:4])
        pairs.append(f"Q{i}: What does the document say about {topic}?\nA{i}: {sentence}")
    return "\n".join(pairs)


def serve(conn) -> None:
    """Child process: the free LLM on a loopback port until the parent closes the pipe."""
    with scripted_server(free_llm_reply, model_id="stand-in/free-llm") as server:
        conn.send(server.base_url)
        conn.recv()


def bare_pages(path: Path, dpi: int) -> int:
    """The bare loop's work for one file: text blocks and a PNG at `dpi` for every page."""
    with pymupdf.open(path) as doc:
        for page in doc:
            page.get_text("blocks", sort=True)
            page.get_pixmap(dpi=dpi).tobytes("png")
        return doc.page_count


def bare_loop(files: list[Path], dpi: int) -> tuple[int, float, float]:
    """Two processes, one file per task, in the order given: (pages, seconds, CPU seconds of the
    two processes)."""
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.starmap(
            bare_pages, [(f, dpi) for f in files[:2]]
        )  # started and warm, as Ray's workers are not
        procs = [psutil.Process(p.pid) for p in pool._pool]
        cpu0 = sum(sum(p.cpu_times()[:2]) for p in procs)
        start = time.perf_counter()
        pages = sum(pool.starmap(bare_pages, [(f, dpi) for f in files], chunksize=1))
        seconds = time.perf_counter() - start
        cpu = sum(sum(p.cpu_times()[:2]) for p in procs) - cpu0
    return pages, seconds, cpu


# Where the first package's ~7,900 pages run out (the 10,000-page run), the next ones' PDFs follow.
PACKAGES = ("texlive-latex-base-doc", "texlive-latex-recommended-doc")


def pick_files(target_pages: int) -> tuple[list[Path], int]:
    """Whole PDFs in order, package after package, until `target_pages`."""
    files, pages = [], 0
    for package in PACKAGES:
        for path in fetch_corpus(package):
            if pages >= target_pages:
                return files, pages
            with pymupdf.open(path) as doc:
                pages += doc.page_count
            files.append(path)
    return files, pages


class MemoryPeaks:
    """Peak RSS of the driver and of each other process of the run (Ray's workers, raylet,
    GCS), sampled every half second in a thread; the stand-in server is left out."""

    def __init__(self, exclude: set[int]) -> None:
        self.exclude = exclude
        self.driver = 0
        self.others: dict[int, tuple[int, str]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def sample(self) -> None:
        me = psutil.Process()
        while not self.stop.wait(0.5):
            self.driver = max(self.driver, me.memory_info().rss)
            for proc in me.children(recursive=True):
                if proc.pid in self.exclude:
                    continue
                try:
                    rss, name = proc.memory_info().rss, " ".join(proc.cmdline())[:60]
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                if rss > self.others.get(proc.pid, (0, ""))[0]:
                    self.others[proc.pid] = (rss, name)

    def __enter__(self) -> MemoryPeaks:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def rows(self) -> list[tuple[str, str]]:
        gib = 2**30
        largest = max(self.others.values(), default=(0, "none"))
        return [
            ("peak RSS: driver", f"{self.driver / gib:.2f} GiB"),
            ("peak RSS: largest other process", f"{largest[0] / gib:.2f} GiB ({largest[1]})"),
            ("other processes seen", str(len(self.others))),
        ]


class Phases:
    """Wall time of named driver calls, by wrapping them where curation.run looks them up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.first_block: tuple[float, int] | None = None
        self.start = 0.0
        self.dataset = None
        self.journal_bytes = 0

    def wrap(self, owner: object, name: str, label: str) -> None:
        original = getattr(owner, name)
        self.seconds[label] = 0.0  # listed in the order installed

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - start

        setattr(owner, name, timed)

    def install(self) -> None:
        run = curation.run
        self.wrap(run, "init_ray", "Ray start (init_ray)")
        self.wrap(run, "preflight", "preflight")
        self.wrap(run, "page_duplicates", "page dedup pre-pass")
        self.wrap(run, "run_graph", "Ray Data graph (run_graph)")
        self.wrap(Journal, "append", "  of which: journal writes (Journal.append)")
        self.wrap(run, "assemble", "assembly (journal -> shards, with dedup)")
        assemble = run.assemble

        def sized(recipe, journal, *args, **kwargs):
            files = [f for f in journal.folder.rglob("*") if f.is_file()]
            self.journal_bytes = sum(f.stat().st_size for f in files)
            return assemble(recipe, journal, *args, **kwargs)

        run.assemble = sized
        self.wrap(run, "dataset_checker", "  of which: whole-dataset dedup index")
        self.wrap(DatasetWriter, "close", "shard writer close (last shards, checksums, manifest)")
        self.wrap(Journal, "remove", "journal removal")
        self.wrap(run, "write_card", "dataset card")
        append = Journal.append

        def first(journal, batch):
            if self.first_block is None:
                pages = sum(len(p) for p in batch.column("pages").to_pylist())
                self.first_block = (time.perf_counter() - self.start, pages)
            return append(journal, batch)

        Journal.append = first
        graph = curation.pipeline.build_graph

        def keep(*args, **kwargs):
            self.dataset = graph(*args, **kwargs)
            return self.dataset

        curation.pipeline.build_graph = keep


def first_task_code(events: list[dict]) -> float:
    """When the first Ray Data task's own code began (epoch seconds), from Ray's timeline: the
    earliest `task:execute` inside a map task, after its worker started and unpickled it."""
    tasks = [e for e in events if e.get("ph") == "X" and e["name"].endswith("._map_task")]
    runs = [e for e in events if e.get("ph") == "X" and e["name"] == "task:execute"]
    starts = [
        run["ts"]
        for task in tasks
        for run in runs
        if run["tid"] == task["tid"] and task["ts"] <= run["ts"] <= task["ts"] + task["dur"]
    ]
    return min(starts) / 1e6


def process_cpu(exclude: set[int]) -> tuple[float, float, dict[str, float]]:
    """(driver, every other descendant, those by process name) CPU seconds, user + system, of
    the live processes."""
    me = psutil.Process()
    driver = sum(me.cpu_times()[:2])
    by_name: dict[str, float] = {}
    for proc in me.children(recursive=True):
        if proc.pid in exclude:
            continue
        try:
            name = " ".join(proc.cmdline())
            seconds = sum(proc.cpu_times()[:2])
        except psutil.NoSuchProcess:
            continue
        label = process_label(name)
        by_name[label] = by_name.get(label, 0.0) + seconds
    return driver, sum(by_name.values()), by_name


def process_label(cmdline: str) -> str:
    """A short name for a process of the run: Ray's title for its workers (ray::...), a Python
    process's script, else the executable's name."""
    if cmdline.startswith("ray::"):
        return re.sub(r"\s+", " ", cmdline)[:48].strip()
    words = cmdline.split()
    if not words:
        return "?"
    if "python" in words[0].rsplit("/", 1)[-1]:
        script = next((w for w in words[1:] if not w.startswith("-")), words[0])
        return script.rsplit("/", 1)[-1]
    return words[0].rsplit("/", 1)[-1]


def recipe_for(files: list[Path], base_url: str, work: Path) -> Recipe:
    """The shipped docmatix recipe, its inputs the files, on the openai engine and the stand-in;
    its caches in `work` so every run starts cold."""
    spec = yaml.safe_load((ROOT / "recipes" / "docmatix.yaml").read_text())
    spec["inputs"] = [str(f) for f in files]
    spec["generate"].update(
        engine="openai",
        model="bundled",
        base_url=base_url,
        cache_dir=str(work / "cache" / "responses"),
    )
    spec["filters"] = str(ROOT / "filters" / "default.yaml")
    spec["output"]["dir"] = str(work / "out")
    return Recipe.model_validate(spec)


def ray_operator_stats(stats: str) -> list[tuple[str, str]]:
    """Each operator's line and its remote wall and CPU totals from Dataset.stats()."""
    rows, name = [], None
    for line in stats.splitlines():
        line = line.strip()
        if line.startswith("Operator "):
            name = line.split(":", 1)[0].split(" ", 2)[-1]
            done = line.split(":", 1)[1].strip()
            rows.append([name, done, "", ""])
        elif name and line.startswith("* Remote wall time:"):
            rows[-1][2] = line.rsplit(",", 1)[-1].strip()
        elif name and line.startswith("* Remote cpu time:"):
            rows[-1][3] = line.rsplit(",", 1)[-1].strip()
    return [(f"{n}: {done}", f"wall {w}, CPU {c}") for n, done, w, c in rows]


def rounds_table(args: argparse.Namespace) -> None:
    """`--rounds N`: N rounds, each this benchmark in a fresh process (the bare loops, then the
    run: a cold Ray, as a user's run starts), then every round's figures and their medians.
    This machine's speed drifts between runs; a ratio is taken within its round."""
    found = []
    for number in range(1, args.rounds + 1):
        with tempfile.TemporaryDirectory() as folder:
            figures = Path(folder) / "figures.json"
            command = [sys.executable, __file__, "--pages", str(args.pages), "--figures"]
            command += [str(figures)] + (["--no-bare"] if args.no_bare else [])
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            found.append(json.loads(figures.read_text()))
        print(f"round {number} of {args.rounds}: {found[-1]['whole_s']:.1f} s", file=sys.stderr)
    columns = {
        "run, whole (s)": [f["whole_s"] for f in found],
        "start-up (s)": [f["startup_s"] for f in found],
        "the first journaled block (s)": [f["first_block_s"] for f in found],
    }
    if not args.no_bare:
        columns["bare loop, files in order (pages/s)"] = [f["bare_rate"] for f in found]
        columns["ratio, whole / bare"] = [f["ratio_whole"] for f in found]
        columns["ratio, after start-up / bare"] = [f["ratio_after_startup"] for f in found]
    print(
        "| measure | " + " | ".join(f"round {n}" for n in range(1, len(found) + 1)) + " | median |"
    )
    print("|---" * (len(found) + 2) + "|")
    for name, values in columns.items():
        cells = " | ".join(f"{v:.2f}" for v in [*values, statistics.median(values)])
        print(f"| {name} | {cells} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=1000, help="pages to run (whole files)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the driver's run")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare PyMuPDF loop")
    parser.add_argument(
        "--timeline", type=Path, help="write Ray's task timeline (chrome://tracing JSON)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds, each a fresh process (the bare loops, then the run); prints every "
        "round's ratios and their medians",
    )
    parser.add_argument("--figures", type=Path, help=argparse.SUPPRESS)  # a round's, as JSON
    args = parser.parse_args()
    if args.rounds > 1:
        rounds_table(args)
        return

    files, _ = pick_files(args.pages)
    work = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    parent, child = multiprocessing.get_context("spawn").Pipe()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(child,))
    server.start()
    base_url = parent.recv()
    recipe = recipe_for(files, base_url, work)

    bare = None if args.no_bare else bare_loop(files, recipe.ingest.dpi)
    bare_lpt = None if args.no_bare else bare_loop(largest_first(files), recipe.ingest.dpi)

    phases = Phases()
    phases.install()
    cpu0 = process_cpu({server.pid})
    profile = cProfile.Profile() if args.profile else None
    phases.start = start = time.perf_counter()
    wall_start = time.time()
    if profile:
        profile.enable()
    with MemoryPeaks({server.pid}) as memory:
        out = work / "out"
        manifest = curation.run.run_recipe(recipe, out_dir=out, prompts_root=ROOT / "prompts")
    if profile:
        profile.disable()
        profile.dump_stats(args.profile)
    seconds = time.perf_counter() - start
    events = ray.timeline()
    if args.timeline:
        args.timeline.write_text(json.dumps(events))
    startup = first_task_code(events) - wall_start
    cpu1 = process_cpu({server.pid})
    server_cpu = sum(psutil.Process(server.pid).cpu_times()[:2])
    stats = phases.dataset.stats() if phases.dataset is not None else ""
    parent.send("stop")
    server.join()

    counts = manifest["counts"]
    rate = counts["pages"] / seconds
    first_s, first_pages = phases.first_block or (0.0, 0)
    steady = counts["pages"] / (seconds - startup)
    rows = [
        ("machine", f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"),
        ("load average at the end (1, 5, 15 min)", ", ".join(f"{x:.1f}" for x in os.getloadavg())),
        (
            "corpus",
            f"{len(files)} PDFs, {counts['pages']} pages, {counts['units']} units, "
            f"{counts['pairs_generated']} pairs generated, {counts['pairs_kept']} kept",
        ),
        ("pages by text source", str(counts["pages_by_text_source"])),
        ("OCR'd pages", str(counts["pages_by_text_source"].get("ocr", 0))),
        ("run, whole", f"{seconds:.1f} s, {rate:.1f} pages/s"),
        (
            "run: start-up (Ray's start, then its workers' until the first task's code)",
            f"{startup:.1f} s",
        ),
        ("run: after start-up", f"{steady:.1f} pages/s"),
        ("run: the first journaled block", f"{first_s:.1f} s ({first_pages} pages)"),
        (
            "run CPU (user+sys): driver / Ray processes / stand-in server",
            f"{cpu1[0] - cpu0[0]:.1f} s / {cpu1[1] - cpu0[1]:.1f} s / {server_cpu:.1f} s",
        ),
        (
            "run CPU per page (driver + Ray)",
            f"{1000 * (cpu1[0] + cpu1[1] - cpu0[0] - cpu0[1]) / counts['pages']:.0f} ms",
        ),
    ]
    bare_rate = bare[0] / bare[1] if bare else None
    if bare and bare_lpt:
        lpt_rate = bare_lpt[0] / bare_lpt[1]
        rows += [
            (
                f"bare PyMuPDF loop, 2 processes, {recipe.ingest.dpi} dpi, files in order",
                f"{bare[1]:.1f} s, {bare_rate:.1f} pages/s, CPU {bare[2]:.1f} s "
                f"({1000 * bare[2] / bare[0]:.0f} ms/page)",
            ),
            (
                "bare loop, the largest files first",
                f"{bare_lpt[1]:.1f} s, {lpt_rate:.1f} pages/s, CPU {bare_lpt[2]:.1f} s",
            ),
            ("ratio, whole run / bare", f"{rate / bare_rate:.2f}x"),
            ("ratio, after start-up / bare", f"{steady / bare_rate:.2f}x"),
            ("ratio, whole run / bare largest first", f"{rate / lpt_rate:.2f}x"),
        ]
    rows += memory.rows()
    by_process = {n: c - cpu0[2].get(n, 0.0) for n, c in cpu1[2].items()}
    rows += [
        (f"CPU of the run's processes: {name}", f"{cpu:.1f} s")
        for name, cpu in sorted(by_process.items(), key=lambda item: -item[1])
        if cpu >= 0.1
    ]
    rows += [("journal size at assembly", f"{phases.journal_bytes / 2**20:.0f} MiB")]
    rows += [(f"driver: {label}", f"{s:.2f} s") for label, s in phases.seconds.items()]
    rows += [(f"Ray Data: {name}", figures) for name, figures in ray_operator_stats(stats)]
    if args.figures:
        args.figures.write_text(
            json.dumps(
                {
                    "whole_s": seconds,
                    "startup_s": startup,
                    "first_block_s": first_s,
                    "bare_rate": bare_rate,
                    "ratio_whole": rate / bare_rate if bare_rate else None,
                    "ratio_after_startup": steady / bare_rate if bare_rate else None,
                }
            )
        )
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
