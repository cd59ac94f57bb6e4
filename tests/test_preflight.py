"""The run's resource plan and its preflight: every stage's ask checked against the nodes, a stage
that fits none refused with the setting to change, an autoscaler's node type accepted; and the
GCS cluster status (nodes, pending demands) read without Ray's dashboard, on a real Ray."""

from __future__ import annotations

import time

import pytest
import ray

from curation.config import GenerateConfig, Recipe
from curation.pipeline import stage_asks, stages
from curation.preflight import (
    GIB,
    NodeRoom,
    RunBlocked,
    StageAsk,
    autoscaler_groups,
    check_plan,
    cluster_status,
    node_rooms,
    pending_demands,
    vllm_on_cpu,
)


def recipe(**generate: object) -> Recipe:
    return Recipe(name="r", inputs=["x"], generate=generate)


def asks_of(recipe: Recipe) -> dict[str, StageAsk]:
    return stage_asks(stages(recipe))


def node(name: str, cpus: float, memory_gb: float, used_cpus: float = 0.0) -> NodeRoom:
    total = {"CPU": cpus, "memory": memory_gb * GIB}
    return NodeRoom(name, total, {**total, "CPU": cpus - used_cpus})


def test_model_actors_ask_no_cpu_so_a_one_cpu_node_keeps_room_for_tasks() -> None:
    asks = asks_of(recipe())
    assert asks["generate"].resources == {"CPU": 0.0, "memory": 4 * GIB}
    assert asks["ingest"].ray_args() == {"num_cpus": 1.0}
    assert asks["ocr"].ray_args() == {"num_cpus": 0.0, "memory": 2 * GIB}  # an OCR actor
    assert "ocr" not in asks_of(Recipe(name="r", inputs=["x"], ingest={"ocr": "never"}))


def test_a_stage_that_fits_no_node_is_refused_with_the_setting_to_change() -> None:
    nodes = [node("10.0.0.1", 1, 3, used_cpus=1), node("10.0.0.2", 2, 12)]
    with pytest.raises(RunBlocked) as refused:
        check_plan(asks_of(recipe(memory_gb=1000)), nodes, {})
    message = str(refused.value)
    assert "stage generate asks 0 CPU, 1000.0 GiB memory" in message
    assert "largest node (10.0.0.2) has 2 CPU, 12.0 GiB memory free" in message
    assert "change generate.memory_gb" in message
    assert check_plan(asks_of(recipe(memory_gb=10)), nodes, {}) == []


def test_an_autoscaler_node_type_that_fits_turns_the_refusal_into_a_warning() -> None:
    nodes = [node("10.0.0.1", 2, 8)]
    groups = {"cpu-small": {"CPU": 2.0, "memory": 8 * GIB}, "big-mem": {"memory": 64 * GIB}}
    [warning] = check_plan(asks_of(recipe(memory_gb=32)), nodes, groups)
    assert "generate asks" in warning and "node of type big-mem" in warning
    with pytest.raises(RunBlocked, match="stage generate"):
        check_plan(asks_of(recipe(memory_gb=100)), nodes, groups)


@pytest.mark.e2e
def test_gcs_cluster_status_lists_nodes_and_pending_demands_without_the_dashboard(
    ray_local,
) -> None:
    rooms = node_rooms(cluster_status())
    assert rooms and all(room.total["CPU"] >= 1 for room in rooms)
    assert autoscaler_groups() == {}  # a local Ray has no autoscaler to add nodes
    # No GPU here, none an autoscaler can add: the vllm engine (auto) runs on CPUs.
    assert vllm_on_cpu(GenerateConfig(engine="vllm")) and not ray.cluster_resources().get("GPU")
    assert not vllm_on_cpu(GenerateConfig(engine="vllm", vllm_device="gpu"))

    @ray.remote(num_cpus=1000)
    def never_placed() -> None:
        return None

    ref = never_placed.remote()
    try:
        deadline = time.monotonic() + 120
        while "1000 CPU x 1" not in pending_demands(cluster_status()):
            assert time.monotonic() < deadline, pending_demands(cluster_status())
            time.sleep(0.2)
    finally:
        ray.cancel(ref)


def test_the_vllm_engine_asks_a_gpu_per_replica_or_on_cpus_a_cpu() -> None:
    gpu = asks_of(recipe(engine="vllm", model="m/7b", vllm_device="gpu"))["generate"]
    assert gpu.resources == {"GPU": 1.0}
    cpu = asks_of(recipe(engine="vllm", model="m/7b", vllm_device="cpu", memory_gb=6))
    assert cpu["generate"].resources == {"CPU": 1.0}
    assert "vllm_device" in cpu["generate"].setting
    # auto: what the cluster has (test_gcs_cluster_status... checks a local Ray's answer); with
    # no Ray running (a plan looked at outside a run), a GPU cluster's plan.
    auto = recipe(engine="vllm", model="m/7b")
    on_cpu = vllm_on_cpu(auto.generate)
    assert asks_of(auto)["generate"].resources == ({"CPU": 1.0} if on_cpu else {"GPU": 1.0})
    assert on_cpu == (ray.is_initialized() and not ray.cluster_resources().get("GPU"))


def test_vllm_device_at_auto_leaves_the_recipe_hash_alone() -> None:
    base = Recipe(name="r", inputs=["x"], generate={"engine": "vllm", "model": "m/7b"})
    auto = {"engine": "vllm", "model": "m/7b", "vllm_device": "auto"}
    assert Recipe(name="r", inputs=["x"], generate=auto).content_hash() == base.content_hash()
    on_cpu = Recipe(name="r", inputs=["x"], generate={**auto, "vllm_device": "cpu"})
    assert on_cpu.content_hash() != base.content_hash()


def test_watchdog_settings_are_run_time_knobs_that_leave_the_recipe_hash_alone() -> None:
    watched = Recipe(name="r", inputs=["x"], run={"stall_timeout_s": 5, "on_stall": "fail"})
    assert watched.content_hash() == Recipe(name="r", inputs=["x"]).content_hash()
    with pytest.raises(ValueError, match="on_stall"):
        Recipe(name="r", inputs=["x"], run={"on_stall": "ignore"})
