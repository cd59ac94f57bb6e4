"""Publish an output folder to a Hugging Face Hub dataset repo, after checking its shards.

The shards are verified against the sha256 sums the writer recorded in manifest.json, so
what goes to the Hub is exactly what the run wrote. The upload is huggingface_hub's
`upload_folder`: with huggingface_hub >= 1.20 and hf_xet installed (both dependencies where hf_xet
has wheels) it commits in batches and a rerun resumes an interrupted publish; without hf_xet, or
with HF_HUB_DISABLE_XET set, it is one commit and an interrupted publish starts over. The plan
says which.

A publish holds the folder's lock (`curation.outdir.FolderLock`) from the checksums to the end of
the upload, so no run rewrites the shards it writes the card for and uploads. A dry run takes no
lock and writes nothing into the folder: its card and site are built in a temporary folder.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib.util
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, constants, get_token

from curation.outdir import FolderLock
from curation.output.card import CARD_FILES, CARD_NAME, SITE_DIR, SITE_LINK, write_card
from curation.output.finished import REPORT_DIR, read_manifest
from curation.seeding import file_sha256

# What a dataset repo receives: the card, the manifest, the shards, the rejects and errors, the
# report. Anything else in the folder (a `.staging` run, an export) stays local.
PUBLISHED = [
    CARD_NAME,
    "manifest.json",
    "data/*.parquet",
    "rejects/*.parquet",
    "errors/*.parquet",
    f"{REPORT_DIR}/*",
]
# Remote files under these folders that this publish does not upload are deleted, so shards of
# an earlier, larger version never linger next to the new ones (the card's glob would load them).
REPLACED = ["data/*", "rejects/*", "errors/*", f"{REPORT_DIR}/*"]
# The offline browser of `curation view` (report/site/) goes only with --with-site; a site being
# built (report/.site.build.*) never does. Site: (output folder, root) -> the overview of the site
# it built into root/report/site/.
SITE_FILES = f"{SITE_DIR}/*"
UNFINISHED = f"{REPORT_DIR}/.*"
Site = Callable[[Path, Path], dict]


def ignored(with_site: bool) -> list[str]:
    """The patterns of files under PUBLISHED that a publish leaves out."""
    return [UNFINISHED] if with_site else [UNFINISHED, SITE_FILES]


def resumable_upload() -> bool:
    """Whether `upload_folder` will commit in batches and resume when rerun: hf_xet installed
    and not turned off with HF_HUB_DISABLE_XET (huggingface_hub's own rule)."""
    return not constants.HF_HUB_DISABLE_XET and importlib.util.find_spec("hf_xet") is not None


class PublishError(ValueError):
    """A folder that must not be published as it is, or a publish without credentials."""


def verify_checksums(out_dir: Path, manifest: dict) -> list[str]:
    """Check every file manifest.json lists against its sha256; returns the verified paths.

    A missing file, a changed file, or a shard the manifest does not list (which the card's
    glob would load) is refused, naming the file.
    """
    verified = []
    for folder, entries in manifest.get("files", {}).items():
        listed = {entry["file"] for entry in entries}
        for entry in entries:
            relative = f"{folder}/{entry['file']}"
            path = out_dir / relative
            if not path.is_file():
                raise PublishError(f"{relative}: listed in manifest.json but missing")
            actual = file_sha256(path)
            if actual != entry["sha256"]:
                raise PublishError(
                    f"{relative}: checksum mismatch (manifest.json says {entry['sha256'][:12]}…, "
                    f"the file has {actual[:12]}…); it changed after the run wrote it. "
                    "Rerun the recipe to rebuild the output."
                )
            verified.append(relative)
        for stray in sorted((out_dir / folder).glob("*.parquet")):
            if stray.name not in listed:
                raise PublishError(
                    f"{folder}/{stray.name}: not listed in manifest.json (not written by the run "
                    "that wrote the manifest); remove it or rerun the recipe"
                )
    return verified


def published_files(out_dir: Path, with_site: bool = False) -> list[tuple[str, int]]:
    """(path relative to the folder, size in bytes) of each file a publish uploads."""
    files = []
    left_out = ignored(with_site)
    for path in sorted(out_dir.rglob("*")):
        relative = path.relative_to(out_dir).as_posix()
        if (
            path.is_file()
            and any(fnmatch.fnmatch(relative, p) for p in PUBLISHED)
            and not any(fnmatch.fnmatch(relative, p) for p in left_out)
        ):
            files.append((relative, path.stat().st_size))
    return files


def human_size(n: float) -> str:
    """A byte count in B, KB, MB, GB or TB."""
    unit = "B"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            break
        n /= 1024
    return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"


@dataclass
class PublishPlan:
    """What `publish` will push, and where."""

    folder: Path
    repo_id: str
    revision: str | None
    private: bool
    files: list[tuple[str, int]]
    verified: list[str]
    card_written: bool
    commit_message: str
    resumable: bool
    site: dict | None = None  # the overview of the site built into report/site/ to go along
    dry_run: bool = False  # the card and site were built in a temporary folder, now gone

    @property
    def ignored(self) -> list[str]:
        return ignored(self.site is not None)

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)

    @property
    def url(self) -> str:
        url = f"{constants.ENDPOINT}/datasets/{self.repo_id}"
        return f"{url}/tree/{self.revision}" if self.revision else url

    def lines(self) -> list[str]:
        """The plan as text: repo, revision, visibility, then every file with its size."""
        visibility = "private" if self.private else "the namespace's default visibility"
        lines = [
            f"repo:      {self.repo_id} (dataset, {visibility}; kept as is if it exists)",
            f"revision:  {self.revision or constants.DEFAULT_REVISION}",
            f"folder:    {self.folder}",
            f"checksums: {len(self.verified)} files match manifest.json",
        ]
        if self.card_written:
            done = "would write" if self.dry_run else "wrote"
            lines.append(f"card:      {done} {CARD_NAME} and {REPORT_DIR}/ from the manifest")
        if self.site is not None:
            samples = self.site["samples"]
            whole = samples.get("truncated_from")
            shown = f"{samples['total']} of {whole}" if whole else f"all {samples['total']}"
            lines.append(f"site:      {SITE_DIR}/ ({shown} samples; the card links it)")
        if self.resumable:
            lines.append(
                "upload:    several commits (hf_xet); rerun an interrupted publish to resume"
            )
        else:
            lines.append(
                "upload:    one commit (hf_xet not installed, or HF_HUB_DISABLE_XET set); an "
                "interrupted publish starts over (pip install hf_xet to resume instead)"
            )
        lines.append(f"files:     {len(self.files)} ({human_size(self.total_bytes)})")
        lines += [f"  {human_size(size):>9}  {path}" for path, size in self.files]
        return lines


def card_is_current(out_dir: Path, with_site: bool) -> bool:
    """Whether README.md can go as it is: it exists, is newer than the manifest, and links no
    site (a card for a site just built is always written again: it gives the site's numbers)."""
    card = out_dir / CARD_NAME
    if with_site or not card.exists():
        return False
    if card.stat().st_mtime < (out_dir / "manifest.json").stat().st_mtime:
        return False
    return SITE_LINK not in card.read_text()


def planned_files(
    out_dir: Path, built: Path, card_written: bool, with_site: bool
) -> list[tuple[str, int]]:
    """The files a publish uploads: those of `out_dir`, where the card and site that `built`
    holds (a dry run's temporary folder) take the place of the ones they would replace."""
    files = dict(published_files(out_dir, with_site))
    if built != out_dir:
        for path in list(files):
            if (card_written and path in CARD_FILES) or (
                with_site and path.startswith(f"{SITE_DIR}/")
            ):
                del files[path]
        files.update(published_files(built, with_site))
    return sorted(files.items())


def plan_publish(
    out_dir: Path,
    repo_id: str,
    revision: str | None = None,
    private: bool = False,
    site: Site | None = None,
    dry_run: bool = False,
) -> PublishPlan:
    """Verify the folder and list what would be pushed; writes the card if missing or stale.
    `site` builds the offline browser (curation.view): then the site goes along and the card
    links it. A dry run builds both in a temporary folder, removed before this returns, and
    writes nothing into `out_dir`."""
    out_dir = Path(out_dir)
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PublishError(f"--repo {repo_id!r}: expected ORG/NAME (or USER/NAME)")
    manifest = read_manifest(out_dir)
    verified = verify_checksums(out_dir, manifest)
    scratch = (
        tempfile.TemporaryDirectory(prefix="curation-publish-")
        if dry_run
        else contextlib.nullcontext(str(out_dir))
    )
    with scratch as folder:
        built = Path(folder)
        overview = site(out_dir, built) if site is not None else None
        card_written = not card_is_current(out_dir, overview is not None)
        if card_written:
            write_card(out_dir, site=overview, dest=built)
        files = planned_files(out_dir, built, card_written, overview is not None)
    counts = manifest.get("counts", {})
    message = (
        f"Publish {manifest.get('recipe_name') or out_dir.name}: "
        f"{counts.get('pairs_kept', 0)} pairs, recipe {str(manifest.get('recipe_hash'))[:12]}"
    )
    return PublishPlan(
        folder=out_dir,
        repo_id=repo_id,
        revision=revision,
        private=private,
        files=files,
        verified=verified,
        card_written=card_written,
        commit_message=message,
        resumable=resumable_upload(),
        site=overview,
        dry_run=dry_run,
    )


def publish_lock(out_dir: Path) -> FolderLock:
    """The lock a publish holds on its output folder (see the module's docstring); the folder is
    checked first, so no lock is written into one that holds no finished run."""
    read_manifest(out_dir)
    return FolderLock(Path(out_dir), "publish")


def publish(plan: PublishPlan, api: HfApi | None = None) -> str:
    """Create the dataset repo (if needed) and upload the planned files; returns its URL.

    The token comes from HF_TOKEN or the saved login (`hf auth login`) and is only ever handed
    to huggingface_hub: never printed, logged or written.
    """
    if plan.dry_run:
        raise PublishError("a dry run's plan: its card was never written into the folder")
    token = get_token()
    if not token:
        raise PublishError(
            "no Hugging Face token: set HF_TOKEN or run `hf auth login` (or use --dry-run)"
        )
    api = api or HfApi()
    # private=None (not False) leaves an organisation that defaults to private repos private.
    api.create_repo(
        plan.repo_id,
        repo_type="dataset",
        private=True if plan.private else None,
        exist_ok=True,
        token=token,
    )
    if plan.revision and plan.revision != constants.DEFAULT_REVISION:
        api.create_branch(
            plan.repo_id, branch=plan.revision, repo_type="dataset", exist_ok=True, token=token
        )
    api.upload_folder(
        repo_id=plan.repo_id,
        repo_type="dataset",
        folder_path=str(plan.folder),
        revision=plan.revision,
        commit_message=plan.commit_message,
        allow_patterns=PUBLISHED,
        ignore_patterns=plan.ignored,
        delete_patterns=REPLACED,
        token=token,
    )
    return plan.url
