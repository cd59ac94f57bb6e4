"""Ray start-up: join a cluster (or start a local one) quietly, with the data settings every run
relies on. The one place that decides how Ray is reached."""

from __future__ import annotations

import logging
import os
import socket

import ray
from ray.data import DataContext

from curation.config import ConfigError

# Ray Data cuts a task's output into blocks of at most this size as the task makes it (its
# default, 128 MiB, held a whole long document: ~500 pages of 150 dpi PNGs). Smaller blocks
# leave the ingest task a few dozen units at a time, so the model starts on the first pages of
# a long manual while the rest is read, and no block (nor a worker's copy of it) grows with
# the document.
BLOCK_BYTES = 16 * 2**20


def init_ray(address: str | None = None) -> None:
    """Start (or join) Ray, quietly, with the data settings every run relies on. A process that
    already runs Ray (a notebook, a test session) keeps it."""
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # our progress display replaces its log
    if not ray.is_initialized():
        target = checked_address(address)
        try:
            ray.init(
                address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR"
            )
        except ConnectionError as exc:
            raise ConfigError(
                f"cannot join the Ray cluster at {target} ({exc}): check the address; a cluster "
                "started by `ray start` also needs RAY_AUTH_MODE=token here, with its token in "
                "~/.ray/auth_token or RAY_AUTH_TOKEN"
            ) from exc
    context = DataContext.get_current()
    context.execution_options.preserve_order = True  # same inputs, same row order, same shards
    context.enable_progress_bars = False
    context.target_max_block_size = BLOCK_BYTES


def checked_address(address: str | None) -> str:
    """The cluster a run joins (`address`, else RAY_ADDRESS; empty: a local Ray), refused with
    the way out when Ray could not run the pipeline there or nothing listens at it."""
    target = address or os.environ.get("RAY_ADDRESS") or ""
    if target.startswith("ray://"):
        # Ray Data's streaming executor does not run over Ray Client (it fails mid-run).
        raise ConfigError(
            f"address {target}: Ray Client (ray://) cannot run the pipeline; pass the "
            "cluster's HOST:PORT from a node of the cluster, or use `ray job submit`"
        )
    host, _, port = target.rpartition(":")
    if host and port.isdigit():
        # Ray itself keeps retrying an address where nothing listens, for many minutes.
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
        except OSError as exc:
            raise ConfigError(f"cannot join the Ray cluster at {target}: {exc}") from exc
    return target
