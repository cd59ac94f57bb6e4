"""`curation run` on a real two-node Ray cluster (two raylets on this host, `ray start`, one CPU
each): the shipped recipe (OCR auto) joins it by RAY_ADDRESS alone, spreads over both nodes and
gives the same dataset there as on a local Ray; a run (joined by --address) whose worker node is
SIGKILLed mid-generation still ends with the same dataset as an undisturbed local run. Real CLI
processes, real Ray, the real bundled model. A model that fits no node is refused before the
first block (on the session's local Ray). A generation stage that stops answering needs no
cluster: test_watchdog.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from cluster_fixtures import LocalCluster, free_ports
from conftest import LENIENT_CHAIN, ROOT, SHORT_DOCUMENTS, curation_cli, make_pdf
from test_resume import dataset_fingerprint

from curation.config import ConfigError
from curation.runtime import checked_address

RECIPE = """
name: cluster
inputs: ["{inputs}/*.pdf"]
ingest: {{dpi: 72, ocr: never}}
units: {{pages_per_unit: 1}}
generate: {{pairs_per_unit: 1, max_tokens: 32, batch_size: 1, seed: 5, memory_gb: 4,
            cache_dir: "{cache}"}}
filters: {chain}
output: {{dir: "{out}", rows_per_shard: 1}}
"""

GENERATE = "MapWorker(MapBatches(GenerateActor))"
# The head node reserves less memory than generate.memory_gb: the model actor can only live on a
# worker node, so killing that node always takes the model (and the blocks it held) with it.
HEAD_MEMORY = 3 * 2**30


def write_recipe(folder: Path, inputs: Path, name: str) -> tuple[Path, Path]:
    chain = folder / "lenient.yaml"
    chain.write_text(LENIENT_CHAIN)
    out = folder / name
    recipe = folder / f"{name}.yaml"
    recipe.write_text(
        RECIPE.format(inputs=inputs, chain=chain, out=out, cache=folder / f"{name}-cache")
    )
    return recipe, out


def sample_ids(out: Path) -> list[str]:
    """The ids of a finished run's samples, in shard order."""
    shards = sorted((out / "data").glob("*.parquet"))
    return [i.as_py() for f in shards for i in pq.read_table(f)["id"]]


def start_run(recipe: Path, env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "curation", "run", str(recipe), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_ok(run: subprocess.Popen, timeout: float = 600) -> str:
    output, _ = run.communicate(timeout=timeout)
    assert run.returncode == 0, output[-3000:]
    return output


# Short pages: the model's prompt stays small, so each unit takes seconds on a CPU.
DOCUMENTS = {name: SHORT_DOCUMENTS[name] for name in ("lighthouse.pdf", "council.pdf")}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cluster-inputs")
    for name, pages in DOCUMENTS.items():
        make_pdf(folder / name, pages)
    return folder


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    # A short root: Ray's socket paths, which live under it, must stay under ~107 characters.
    root = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
    cluster = LocalCluster(root)
    try:
        cluster.add_node(num_cpus=1, resources={"head": 1}, memory=HEAD_MEMORY)
        cluster.add_node(num_cpus=1)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.e2e
def test_the_shipped_recipe_joins_by_ray_address_uses_both_nodes_and_matches_a_local_run(
    cluster: LocalCluster, ray_local, inputs: Path, tmp_path: Path
) -> None:
    # OCR auto and a model actor on one of the two 1-CPU nodes: every stage still finds room.
    # Only the reply cache moves (a run-time setting): the cluster generates every reply, and
    # the local run reuses them, so the two datasets must match byte for byte.
    spec = yaml.safe_load((ROOT / "recipes" / "docmatix.yaml").read_text())
    spec["generate"]["cache_dir"] = str(tmp_path / "cache")
    # The module's two short documents: what is tested is where each stage finds room, not
    # what the model writes about the sample corpus.
    spec["inputs"] = [f"{inputs}/*.pdf"]
    spec["generate"]["max_tokens"] = 48  # shorter replies, for the same reason
    recipe = tmp_path / "docmatix.yaml"
    recipe.write_text(yaml.safe_dump(spec))
    on_cluster, local = tmp_path / "cluster", tmp_path / "local"
    common = [str(recipe), "--limit", "2"]
    # No --address: RAY_ADDRESS alone joins the cluster.
    run = start_run(
        recipe,
        cluster.client_env(RAY_ADDRESS=cluster.address),
        *common[1:],
        "--out",
        str(on_cluster),
    )
    wait_ok(run, timeout=1800)
    work = {node.name: node.work_done() for node in cluster.nodes}
    assert sum(done["MapBatches(ingest_batch)"] for done in work.values()) == 2, work
    # The model sits on node1 (the head has too little memory), and node1 still ingests.
    assert work["node1"][GENERATE] >= 1, work
    assert work["node1"]["MapBatches(ingest_batch)"] >= 1, work
    assert any("_batch)" in task for task in work["head"]), work  # ingest or filter tasks
    result = curation_cli("run", *common, "--out", str(local))  # in this process, local Ray
    assert result.exit_code == 0, result.output[-3000:]
    manifest = json.loads((on_cluster / "manifest.json").read_text())
    assert Counter(record["status"] for record in manifest["inputs"]) == {"ok": 2}
    assert manifest["counts"]["completion_tokens"] > 0  # the model on the cluster wrote replies
    assert dataset_fingerprint(on_cluster) == dataset_fingerprint(local)


@pytest.mark.e2e
def test_a_model_that_fits_no_node_is_refused_before_the_first_block(
    ray_local, inputs: Path, tmp_path: Path
) -> None:
    """On the session's local Ray (one node is enough to fit nothing)."""
    recipe, out = write_recipe(tmp_path, inputs, "too-big")
    spec = yaml.safe_load(recipe.read_text())
    spec["generate"]["memory_gb"] = 1000
    recipe.write_text(yaml.safe_dump(spec))
    result = curation_cli("run", str(recipe))
    assert result.exit_code == 3, result.output[-3000:]
    said = " ".join(result.output.split())  # the terminal wraps long lines
    assert "stage generate asks 0 CPU, 1000.0 GiB memory" in said
    assert "change generate.memory_gb" in said
    assert not list((out / ".journal").glob("*.arrow"))  # refused before any block was done


@pytest.mark.e2e
def test_losing_a_worker_node_mid_run_gives_the_same_dataset(
    cluster: LocalCluster, ray_local, inputs: Path, tmp_path: Path
) -> None:
    # The undisturbed run: in this process on the local Ray, with replies of its own (so the
    # model writes the same replies in another process and on another node).
    ref_recipe, reference = write_recipe(tmp_path, inputs, "reference")
    result = curation_cli("run", str(ref_recipe))
    assert result.exit_code == 0, result.output[-3000:]
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["counts"]["units"] == 4
    assert Counter(record["status"] for record in manifest["inputs"]) == {"ok": 2}

    recipe, out = write_recipe(tmp_path, inputs, "node-lost")
    worker = cluster.nodes[1]
    run = start_run(recipe, cluster.client_env(), "--address", cluster.address)
    sent = tmp_path / "node-lost-cache" / "sent.log"  # one line per request the model starts
    deadline = time.monotonic() + 600
    # Kill while the model, one unit done, works on the second (batch_size 1, one at a time).
    while not (sent.exists() and len(sent.read_text().split()) >= 2):
        assert run.poll() is None, run.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "generation never started"
        time.sleep(0.05)
    worker.kill()
    replies_at_kill = len(list(sent.parent.glob("*/*.json")))
    # The model can only live on a worker node: a replacement joins, as an autoscaler would add.
    replacement = cluster.add_node(num_cpus=1)
    wait_ok(run)

    work = {node.name: dict(node.work_done()) for node in cluster.nodes}
    assert replies_at_kill < 4, work  # units were left for the model after the node was lost
    assert replacement.work_done()[GENERATE] >= 1, work  # the model restarted on the new node
    assert dataset_fingerprint(out) == dataset_fingerprint(reference)
    ids = sample_ids(out)
    assert ids and len(ids) == len(set(ids)) and ids == sample_ids(reference)


@pytest.mark.parametrize("flag", [True, False])
def test_ray_client_address_is_refused_with_the_way_out(
    flag: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = "ray://127.0.0.1:10001"
    if not flag:
        monkeypatch.setenv("RAY_ADDRESS", address)
    with pytest.raises(ConfigError, match="ray job submit"):
        checked_address(address if flag else None)


def test_an_address_where_nothing_listens_fails_fast() -> None:
    port = free_ports(1)[0]
    started = time.monotonic()
    with pytest.raises(ConfigError, match=f"cannot join the Ray cluster at 127.0.0.1:{port}"):
        checked_address(f"127.0.0.1:{port}")
    assert time.monotonic() - started < 15
