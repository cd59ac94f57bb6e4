"""The run's watchdog: a Ray Data execution callback that notices when no stage of the graph
finishes a block for too long, and then says which stage waits and what Ray cannot schedule
(the GCS's pending demands), or ends the run (`run.on_stall`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar

from ray.data import DataContext
from ray.data._internal.execution.execution_callback import ExecutionCallback
from ray.data._internal.execution.streaming_executor import StreamingExecutor

from curation.config import RunConfig
from curation.preflight import RunBlocked, cluster_status, pending_demands

# Progress of one operator: blocks its tasks produced, blocks taken from it, blocks queued.
Counts = tuple[int, int, int, int]


class Watchdog:
    """Watches one execution of a Ray Data graph, step by step of its scheduling loop.

    A stage that has not finished its first block yet (a model loading, the first batch) gets
    `startup_timeout_s`; afterwards the run is stalled once no stage has moved a block for
    `stall_timeout_s`. `report(stage, message)` is called on a stall (every `stall_timeout_s`
    while it lasts) and with `(None, None)` once blocks move again; with `on_stall: fail` the
    stall raises RunBlocked in the executor instead, which ends the run (also kept in
    `blocked`). `stage_names` maps what an operator's name holds to the stage's name, as the
    stage table declares both (`curation.pipeline.stage_names`)."""

    def __init__(
        self,
        settings: RunConfig,
        stage_names: dict[str, str],
        report: Callable[[str | None, str | None], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.stage_names = stage_names
        self.report = report
        self.clock = clock
        self.blocked: RunBlocked | None = None
        self._last: dict[str, Counts] = {}
        self._moved_at = clock()
        self._reported_at: float | None = None

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Watch the Ray Data executions started within (in this process)."""
        callbacks = DataContext.get_current().custom_execution_callback_classes
        WatchdogCallback.active = self
        callbacks.append(WatchdogCallback)
        try:
            yield
        finally:
            callbacks.remove(WatchdogCallback)
            WatchdogCallback.active = None

    def start(self) -> None:
        self._moved_at = self.clock()

    def stage(self, operator: str) -> str:
        """Our name for a Ray Data operator (e.g. MapBatches(GenerateActor) -> generate)."""
        found = [name for key, name in self.stage_names.items() if key in operator]
        return found[-1] if found else operator

    def step(self, executor: StreamingExecutor) -> None:
        # The executor's own counters (what Ray's NoProgressGuard and issue detectors read).
        topology = executor._topology or {}
        counts: dict[str, Counts] = {}
        waiting: str | None = None
        started = True
        for op, state in topology.items():
            metrics = op.metrics
            counts[op.name] = (
                metrics.num_task_outputs_generated,
                metrics.num_outputs_taken,
                state.total_enqueued_input_blocks(),
                state.total_enqueued_output_blocks(),
            )
            # The most downstream operator with work in hand is the one the run waits for.
            if not op.has_completed() and (
                op.num_active_tasks() or state.total_enqueued_input_blocks()
            ):
                waiting = op.name
                started = metrics.num_task_outputs_generated > 0
        now = self.clock()
        if counts != self._last:
            self._last = counts
            self._moved_at = now
            if self._reported_at is not None:
                self._reported_at = None
                self.report(None, None)
            return
        if waiting is None:
            return
        limit = self.settings.stall_timeout_s if started else self.settings.startup_timeout_s
        idle = now - self._moved_at
        if idle < limit or (self._reported_at is not None and now - self._reported_at < limit):
            return
        self._reported_at = now
        stage = self.stage(waiting)
        message = self.describe(stage, idle, started)
        if self.settings.on_stall == "fail":
            self.blocked = RunBlocked(message)
            raise self.blocked
        self.report(stage, message)

    def describe(self, stage: str, idle: float, started: bool) -> str:
        """What the run waits for: the stage, for how long, and what Ray cannot schedule."""
        try:
            demands = pending_demands(cluster_status(wait_s=0))
        except Exception as exc:  # a report must not end the run it reports on
            demands = [f"unknown (the cluster status could not be read: {exc})"]
        waits = (
            f"Ray cannot place: {'; '.join(demands)}"
            if demands
            else "nothing waits for resources: its tasks or actors run but finish nothing (slow, "
            "or hung on something outside Ray, such as a server that does not answer)"
        )
        limit = "run.stall_timeout_s" if started else "run.startup_timeout_s"
        return (
            f"no block finished in any stage for {idle:.0f} s ({limit}); waiting for stage "
            f"{stage}. {waits}"
        )


class WatchdogCallback(ExecutionCallback):
    """Ray Data instantiates registered callback classes itself, and ships the data context
    (with this class, by reference) to its workers: the watchdog is found through the class."""

    active: ClassVar[Watchdog | None] = None

    def before_execution_starts(self, executor: StreamingExecutor) -> None:
        if self.active:
            self.active.start()

    def on_execution_step(self, executor: StreamingExecutor) -> None:
        if self.active:
            self.active.step(executor)
