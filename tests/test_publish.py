import hashlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

import huggingface_hub._upload_pipeline
import pytest
from datasets import load_dataset
from huggingface_hub import HfApi, constants
from output_fixtures import build_output
from PIL import Image
from test_output_folders import run_holding
from typer.testing import CliRunner

import curation.output.publish as publish_module
from curation.cli import app, site_builder
from curation.outdir import LOCK
from curation.output.card import SITE_DIR, SITE_LINK
from curation.output.publish import (
    PUBLISHED,
    REPLACED,
    SITE_FILES,
    UNFINISHED,
    human_size,
    plan_publish,
    publish,
    published_files,
)
from curation.view.site import SITE_MARKER

SECRET = "hf_FAKE0123456789abcdefSECRETTOKEN"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("publish") / "tiny"
    build_output(out)
    return out


@pytest.fixture
def dataset(built, tmp_path) -> Path:
    """A fresh copy of the built folder (no card yet), free to change."""
    return Path(shutil.copytree(built, tmp_path / "tiny"))


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No network, no token unless a test sets one, and no saved login from this machine."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))


def flat(output: str) -> str:
    return " ".join(output.split())


def test_dry_run_prints_the_plan_without_token_or_network(dataset):
    result = CliRunner().invoke(
        app, ["publish", str(dataset), "--repo", "acme/tiny-docs", "--dry-run", "--private"]
    )
    assert result.exit_code == 0, result.output
    out = flat(result.output)
    assert "repo: acme/tiny-docs (dataset, private; kept as is if it exists)" in out
    assert "revision: main" in out
    assert "upload: several commits (hf_xet); rerun an interrupted publish to resume" in out
    assert "checksums: 4 files match manifest.json" in out
    assert "dry run: nothing written into the folder, nothing uploaded" in out
    assert "card: would write README.md and report/ from the manifest" in out
    planned = plan_publish(dataset, "acme/tiny-docs", dry_run=True).files
    for path, size in planned:
        assert f"{human_size(size)} {path}" in out
    assert {p for p, _ in planned} >= {
        "README.md",
        "manifest.json",
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
        "rejects/rejects-00000-of-00001.parquet",
        "errors/errors-00000-of-00001.parquet",
        "report/stats.json",
        "report/funnel.png",
    }
    assert not (dataset / "README.md").exists()  # the card is missing: only planned


def tree(folder: Path) -> dict[str, tuple]:
    """Every path under `folder` (itself included): a file's size, mtime_ns and sha256, a
    folder's mtime_ns (it changes when an entry is added or removed, even for a moment)."""
    found = {}
    for path in [folder, *sorted(folder.rglob("*"))]:
        stat = path.lstat()
        key = path.relative_to(folder).as_posix()
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found[key] = ("file", stat.st_size, stat.st_mtime_ns, digest)
        else:
            found[key] = ("folder", stat.st_mtime_ns)
    return found


def test_a_dry_run_writes_nothing_into_the_folder(dataset, tmp_path, monkeypatch):
    """The card is missing and the site is asked for: the plan lists both, built in a temporary
    folder that is gone afterwards; the output folder is the same, byte for byte and mtime."""
    scratch = tmp_path / "system-tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where TemporaryDirectory goes
    before = tree(dataset)
    for extra in ([], ["--with-site", "--site-max-samples", "1"]):
        result = CliRunner().invoke(
            app, ["publish", str(dataset), "--repo", "acme/t", "--dry-run", *extra]
        )
        assert result.exit_code == 0, result.output
        out = flat(result.output)
        assert "card: would write README.md and report/ from the manifest" in out
        assert "README.md" in out and "report/stats.json" in out
        assert (f"{SITE_DIR}/data/overview.js" in out) == bool(extra)
        assert tree(dataset) == before
        assert list(scratch.iterdir()) == []  # the temporary folder was removed

    # What the dry run planned is what a publish then writes and uploads.
    dry = plan_publish(dataset, "acme/t", site=site_builder(1), dry_run=True)
    real = plan_publish(dataset, "acme/t", site=site_builder(1))
    assert [path for path, _ in dry.files] == [path for path, _ in real.files]
    assert dict(dry.files)["README.md"] == dict(real.files)["README.md"]


def test_a_changed_shard_is_refused_by_name(dataset):
    shard = dataset / "data" / "train-00001-of-00002.parquet"
    shard.write_bytes(shard.read_bytes() + b"\0")
    result = CliRunner().invoke(app, ["publish", str(dataset), "--repo", "acme/t", "--dry-run"])
    assert result.exit_code == 1
    assert "data/train-00001-of-00002.parquet: checksum mismatch" in flat(result.output)


def test_a_shard_the_manifest_does_not_list_is_refused(dataset):
    shutil.copy(
        dataset / "data" / "train-00000-of-00002.parquet", dataset / "data" / "train-x.parquet"
    )
    result = CliRunner().invoke(app, ["publish", str(dataset), "--repo", "acme/t", "--dry-run"])
    assert result.exit_code == 1
    assert "data/train-x.parquet: not listed in manifest.json" in flat(result.output)


def test_the_pushed_files_alone_load_through_the_card(dataset, tmp_path):
    (dataset / ".staging").mkdir()
    (dataset / ".staging" / "leftover.parquet").write_bytes(b"not for the hub")
    plan = plan_publish(dataset, "acme/tiny-docs")
    repo = tmp_path / "repo"  # what the Hub repo holds after the upload
    for relative, _ in plan.files:
        (repo / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(dataset / relative, repo / relative)
    assert not (repo / ".staging").exists()
    ds = load_dataset(str(repo), split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.num_rows == 3
    assert isinstance(ds[0]["images"][0], Image.Image)


class FakeHfApi:
    """Stands in for huggingface_hub.HfApi (the Hub cannot be reached here): records calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    def create_repo(self, *args, **kwargs):
        self.calls.append(("create_repo", args, kwargs))

    def create_branch(self, *args, **kwargs):
        self.calls.append(("create_branch", args, kwargs))

    def upload_folder(self, *args, **kwargs):
        self.calls.append(("upload_folder", args, kwargs))


def test_publish_creates_the_repo_and_uploads_without_showing_the_token(dataset, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    fake = FakeHfApi()
    monkeypatch.setattr(publish_module, "HfApi", lambda: fake)
    result = CliRunner().invoke(
        app,
        ["publish", str(dataset), "--repo", "acme/tiny-docs", "--private", "--revision", "v1"],
    )
    assert result.exit_code == 0, result.output
    assert [name for name, _, _ in fake.calls] == [
        "create_repo",
        "create_branch",
        "upload_folder",
    ]
    (_, repo_args, repo_kwargs), (_, branch_args, branch_kwargs), (_, _, upload) = fake.calls
    assert repo_args == ("acme/tiny-docs",)
    assert repo_kwargs == {
        "repo_type": "dataset",
        "private": True,
        "exist_ok": True,
        "token": SECRET,
    }
    assert branch_args == ("acme/tiny-docs",)
    assert branch_kwargs == {
        "branch": "v1",
        "repo_type": "dataset",
        "exist_ok": True,
        "token": SECRET,
    }
    assert upload["repo_id"] == "acme/tiny-docs"
    assert upload["repo_type"] == "dataset"
    assert upload["folder_path"] == str(dataset)
    assert upload["revision"] == "v1"
    assert upload["allow_patterns"] == PUBLISHED
    assert upload["ignore_patterns"] == [UNFINISHED, SITE_FILES]  # no --with-site: no site
    assert upload["delete_patterns"] == REPLACED
    assert upload["token"] == SECRET
    assert upload["commit_message"].startswith("Publish tiny: 5 pairs")
    assert "published: https://huggingface.co/datasets/acme/tiny-docs/tree/v1" in result.output

    assert SECRET not in result.output
    for path in dataset.rglob("*"):
        assert not path.is_file() or SECRET.encode() not in path.read_bytes()


def test_publish_without_a_token_says_how_to_log_in(dataset, monkeypatch):
    fake = FakeHfApi()
    monkeypatch.setattr(publish_module, "HfApi", lambda: fake)
    result = CliRunner().invoke(app, ["publish", str(dataset), "--repo", "acme/tiny-docs"])
    assert result.exit_code == 1
    assert "set HF_TOKEN or run `hf auth login`" in flat(result.output)
    assert fake.calls == []


def test_publish_refuses_a_repo_without_namespace(dataset):
    result = CliRunner().invoke(app, ["publish", str(dataset), "--repo", "tiny", "--dry-run"])
    assert result.exit_code == 1
    assert "expected ORG/NAME" in flat(result.output)


def test_publish_to_main_keeps_the_namespace_default_visibility(dataset, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    fake = FakeHfApi()
    url = publish(plan_publish(dataset, "acme/tiny-docs"), api=fake)
    assert [name for name, _, _ in fake.calls] == ["create_repo", "upload_folder"]
    assert fake.calls[0][2]["private"] is None  # not False: an org's private default holds
    assert fake.calls[1][2]["revision"] is None
    assert url == "https://huggingface.co/datasets/acme/tiny-docs"


class RecordingHub(HfApi):
    """A FAKE Hub client (the Hub cannot be reached here): huggingface_hub's own `upload_folder`
    runs and chooses its path; the calls that would reach the Hub record what they were given."""

    def __init__(self) -> None:
        super().__init__(token=False)
        self.commits: list[list[str]] = []

    def create_repo(self, *args, **kwargs):
        return None

    def _prepare_folder_deletions(self, *args, **kwargs):
        return []  # an empty repo: nothing to delete

    def _validate_yaml(self, *args, **kwargs):
        return None

    def create_commit(self, *, operations, **kwargs):
        self.commits.append(sorted(op.path_in_repo for op in operations))


@pytest.mark.parametrize("xet_off", [False, True])
def test_the_plan_names_the_upload_path_huggingface_hub_takes(dataset, monkeypatch, xet_off):
    """With hf_xet (a dependency) the upload goes through huggingface_hub's multi-commit,
    resumable pipeline; with HF_HUB_DISABLE_XET it is one commit, and the plan says so."""
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", xet_off)
    pipelined: list[list[str]] = []

    def pipelined_upload(api, *, add_operations, **kwargs):
        pipelined.append(sorted(op.path_in_repo for op in add_operations))

    monkeypatch.setattr(huggingface_hub._upload_pipeline, "pipelined_upload", pipelined_upload)
    plan = plan_publish(dataset, "acme/tiny-docs")
    hub = RecordingHub()
    publish(plan, api=hub)
    planned = sorted(path for path, _ in plan.files)
    assert plan.resumable is not xet_off
    if xet_off:
        assert (pipelined, hub.commits) == ([], [planned])
        assert any(line.startswith("upload:    one commit") for line in plan.lines())
    else:
        assert (pipelined, hub.commits) == ([planned], [])
        assert any(line.startswith("upload:    several commits") for line in plan.lines())


def test_with_site_the_browser_goes_along_and_the_card_links_it(dataset, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    fake = FakeHfApi()
    monkeypatch.setattr(publish_module, "HfApi", lambda: fake)
    result = CliRunner().invoke(
        app,
        [
            *("publish", str(dataset), "--repo", "acme/t"),
            *("--with-site", "--site-max-samples", "1"),
        ],
    )
    assert result.exit_code == 0, result.output
    out = flat(result.output)
    assert f"site: {SITE_DIR}/ (1 of 3 samples; the card links it)" in out
    planned = {path for path, _ in published_files(dataset, with_site=True)}
    assert {f"{SITE_DIR}/data/overview.js", f"{SITE_DIR}/data/samples-00000.js"} <= planned
    for path in planned:
        assert path in out
    card = (dataset / "README.md").read_text()
    assert SITE_LINK in card and "Browse the first 1 of 3 samples" in card
    assert (dataset / SITE_DIR / SITE_MARKER).is_file()

    # Without --with-site the site stays home, and a card that links it would be written again.
    again = CliRunner().invoke(app, ["publish", str(dataset), "--repo", "acme/t", "--dry-run"])
    assert again.exit_code == 0, again.output
    assert f"{SITE_DIR}/" not in flat(again.output)
    assert "card: would write README.md" in flat(again.output)
    assert SITE_LINK in (dataset / "README.md").read_text()  # a dry run: as it was


def test_a_folder_at_report_site_that_is_not_a_site_is_refused(dataset):
    (dataset / SITE_DIR).mkdir(parents=True)
    (dataset / SITE_DIR / "mine.txt").write_text("my own notes")
    result = CliRunner().invoke(
        app, ["publish", str(dataset), "--repo", "acme/t", "--dry-run", "--with-site"]
    )
    assert result.exit_code == 2
    assert f"{dataset / SITE_DIR}: holds files" in flat(result.output)
    assert [p.name for p in (dataset / SITE_DIR).iterdir()] == ["mine.txt"]


def test_huggingface_hub_uploads_exactly_the_planned_site(dataset, monkeypatch):
    """huggingface_hub's own filter (one commit, HF_HUB_DISABLE_XET) takes the site's files
    and leaves out a site being built, as the plan says."""
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    leftover = dataset / "report" / ".site.build.x" / "site"
    leftover.mkdir(parents=True)
    (leftover / "index.html").write_text("half-built")
    plan = plan_publish(dataset, "acme/tiny-docs", site=site_builder(2000))
    hub = RecordingHub()
    publish(plan, api=hub)
    planned = sorted(path for path, _ in plan.files)
    assert hub.commits == [planned]
    assert f"{SITE_DIR}/data/overview.js" in planned
    assert f"{SITE_DIR}/{SITE_MARKER}" in planned
    assert not any(path.startswith("report/.") for path in planned)


def test_publish_holds_the_folder_lock_while_it_writes_and_uploads(dataset, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    held: dict[str, dict | None] = {}
    write_card = publish_module.write_card

    def lock_seen_by(step: str) -> None:
        lock = dataset / LOCK
        held[step] = json.loads(lock.read_text()) if lock.exists() else None

    def watched_write_card(*args, **kwargs):
        lock_seen_by("card")
        return write_card(*args, **kwargs)

    class LockWatchingHub(FakeHfApi):
        """A FAKE Hub client (the Hub cannot be reached here) that looks at the lock."""

        def upload_folder(self, *args, **kwargs):
            lock_seen_by("upload")
            super().upload_folder(*args, **kwargs)

    monkeypatch.setattr(publish_module, "write_card", watched_write_card)
    monkeypatch.setattr(publish_module, "HfApi", LockWatchingHub)
    result = CliRunner().invoke(app, ["publish", str(dataset), "--repo", "acme/t", "--with-site"])
    assert result.exit_code == 0, result.output
    for step in ("card", "upload"):
        assert held[step] is not None, step
        assert held[step]["command"] == "publish" and held[step]["pid"] == os.getpid()
    assert not (dataset / LOCK).exists()  # released


def test_a_publish_is_refused_while_a_run_writes_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    fake = FakeHfApi()
    monkeypatch.setattr(publish_module, "HfApi", lambda: fake)
    out = tmp_path / "dataset"
    with run_holding(out) as holder:
        build_output(out)  # what the run has written so far
        before = tree(out)
        result = CliRunner().invoke(app, ["publish", str(out), "--repo", "acme/t", "--with-site"])
        assert result.exit_code == 2, result.output
        told = flat(result.output)
        assert "another command is writing this folder: `curation run`" in told
        assert f"PID {holder.pid}" in told and f"host {socket.gethostname()}" in told
        assert fake.calls == []
        # No card, no site, the run's lock untouched (the folder's own mtime moved: the refused
        # lock's private file came and went in it).
        assert {k: v for k, v in tree(out).items() if k != "."} == {
            k: v for k, v in before.items() if k != "."
        }
        dry = CliRunner().invoke(app, ["publish", str(out), "--repo", "acme/t", "--dry-run"])
        assert dry.exit_code == 0, dry.output  # a dry run only reads
    # The run has finished and released its lock.
    result = CliRunner().invoke(app, ["publish", str(out), "--repo", "acme/t"])
    assert result.exit_code == 0, result.output
    assert [name for name, _, _ in fake.calls] == ["create_repo", "upload_folder"]
