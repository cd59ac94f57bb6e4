"""The preflight: every stage's ask of the Ray cluster (from the stage table,
`curation.pipeline.stages`) checked against the cluster's nodes before the first block, so a
stage that fits nowhere stops the run at once instead of waiting forever. Node resources and
pending demands come from the GCS's cluster status (what `ray status` shows), which works
without Ray's dashboard.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import ray
from ray._private.state import state as gcs_state
from ray.autoscaler.v2.schema import ClusterStatus
from ray.autoscaler.v2.sdk import get_cluster_status

from curation.config import GenerateConfig

GIB = 1024**3
# Ray's CPU and memory figures are rounded to 1/10000 when scheduled: compare with that slack.
SLACK = 1e-4


class RunBlocked(RuntimeError):
    """A run that cannot make progress: a stage fits no node, or the watchdog saw a stall."""


@dataclass(frozen=True)
class StageAsk:
    """The resources one task or actor of a stage asks for, and the setting that sets them."""

    stage: str
    resources: dict[str, float]  # Ray's names: CPU, GPU, memory (bytes), custom resources
    setting: str

    def ray_args(self) -> dict[str, float]:
        """The ask as `map_batches` keyword arguments."""
        args = {"num_cpus": self.resources.get("CPU", 0.0)}
        if "memory" in self.resources:
            args["memory"] = int(self.resources["memory"])
        return args


def vllm_on_cpu(cfg: GenerateConfig) -> bool:
    """Whether the vllm engine runs on CPUs: generate.vllm_device, or (auto) when no node of the
    Ray cluster has a GPU and its autoscaler can add none. Without Ray running (a plan looked
    at outside a run), auto means GPUs, the engine's usual home."""
    if cfg.vllm_device != "auto":
        return cfg.vllm_device == "cpu"
    if not ray.is_initialized():
        return False
    if ray.cluster_resources().get("GPU", 0) > 0:
        return False
    return not any(group.get("GPU", 0) > 0 for group in autoscaler_groups().values())


@dataclass(frozen=True)
class NodeRoom:
    """One node of the cluster: its resources in all and those free now."""

    name: str
    total: dict[str, float]
    free: dict[str, float]


def cluster_status(wait_s: float = 30.0) -> ClusterStatus:
    """The GCS's view of the cluster (nodes, usage, pending demands); right after `ray.init`
    the local node may take a moment to appear, so an empty answer is asked again."""
    address = ray.get_runtime_context().gcs_address
    deadline = time.monotonic() + wait_s
    status = get_cluster_status(address)
    while not (status.active_nodes or status.idle_nodes) and time.monotonic() < deadline:
        time.sleep(0.2)
        status = get_cluster_status(address)
    return status


def node_rooms(status: ClusterStatus) -> list[NodeRoom]:
    """The running nodes with their total and free resources."""
    rooms = []
    for node in [*status.active_nodes, *status.idle_nodes]:
        usage = node.resource_usage.usage if node.resource_usage else []
        rooms.append(
            NodeRoom(
                node.ip_address or node.node_id or "?",
                {u.resource_name: u.total for u in usage},
                {u.resource_name: u.total - u.used for u in usage},
            )
        )
    return rooms


def pending_demands(status: ClusterStatus) -> list[str]:
    """What tasks, actors and placement groups wait for, as `ray status` lists it."""
    demands = status.resource_demands
    lines = []
    for demand in [*demands.ray_task_actor_demand, *demands.placement_group_demand]:
        for request in demand.bundles_by_count:
            lines.append(f"{describe(request.bundle)} x {request.count}")
    return lines


def describe(resources: dict[str, float]) -> str:
    """Resources as a person reads them: memory in GiB, Ray's internal node markers left out."""
    parts = []
    for name, amount in sorted(resources.items()):
        if name.startswith("node:") or name == "object_store_memory":
            continue
        if name == "memory":
            parts.append(f"{amount / GIB:.1f} GiB memory")
        else:
            parts.append(f"{amount:g} {name}")
    return ", ".join(parts) or "nothing"


def fits(ask: dict[str, float], room: dict[str, float]) -> bool:
    return all(amount <= room.get(name, 0.0) + SLACK for name, amount in ask.items() if amount)


def autoscaler_groups() -> dict[str, dict[str, float]]:
    """Node types an autoscaler may still add (name -> resources), from the cluster config it
    reports to the GCS (KubeRay, `ray up`); empty without an autoscaler."""
    config = gcs_state.get_cluster_config()
    if config is None:
        return {}
    return {
        group.name: dict(group.resources)
        for group in config.node_group_configs
        if group.max_count != 0
    }


def check_plan(
    asks: dict[str, StageAsk], nodes: list[NodeRoom], groups: dict[str, dict[str, float]]
) -> list[str]:
    """Raise RunBlocked for the first stage that fits no node and no node type an autoscaler
    could add; returns a warning per stage that waits for such a node."""
    warnings = []
    for ask in asks.values():
        if any(fits(ask.resources, node.total) for node in nodes):
            continue
        scalable = [name for name, resources in groups.items() if fits(ask.resources, resources)]
        if scalable:
            warnings.append(
                f"{ask.stage} asks {describe(ask.resources)}, more than any node has now; the "
                f"run waits for the autoscaler to add a node of type {', '.join(scalable)}"
            )
            continue
        raise RunBlocked(shortfall(ask, nodes))
    return warnings


def shortfall(ask: StageAsk, nodes: list[NodeRoom]) -> str:
    """Why a stage fits no node: its ask, the largest node's resources, the setting to change."""
    if not nodes:
        return f"stage {ask.stage} asks {describe(ask.resources)}, and the cluster has no node"

    def missing(node: NodeRoom) -> list[str]:
        return [
            name
            for name, amount in ask.resources.items()
            if amount > node.total.get(name, 0.0) + SLACK
        ]

    # The largest node: the one short of the fewest resources, and of those by the least.
    largest = min(
        nodes, key=lambda node: (len(missing(node)), -node.total.get(missing(node)[0], 0.0))
    )
    return (
        f"stage {ask.stage} asks {describe(ask.resources)} per task or actor, which no node "
        f"has: the largest node ({largest.name}) has {describe(largest.free)} free of "
        f"{describe(largest.total)}; change {ask.setting}, or add a node with room"
    )


def preflight(asks: dict[str, StageAsk]) -> list[str]:
    """Check the run's plan (`curation.pipeline.stage_asks`) against the cluster (RunBlocked if
    a stage fits nowhere); returns warnings for stages that wait for an autoscaler's node."""
    return check_plan(asks, node_rooms(cluster_status()), autoscaler_groups())
