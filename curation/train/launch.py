"""Where training runs: this process (one device, or one of several under `accelerate launch`), or
Ray Train workers on a cluster (TorchTrainer sets up torch.distributed; accelerate picks it up)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from rich.table import Table

from curation.outdir import OutputFolder
from curation.train.config import TrainConfig, load_train_config
from curation.train.loop import REPORT, config_hash


def prepare_config(
    path: Path, max_steps: int | None = None, output_dir: Path | None = None
) -> TrainConfig:
    """Load a train config and apply command-line overrides."""
    config = load_train_config(path)
    if max_steps is not None:
        config = config.model_copy(
            update={"schedule": config.schedule.model_copy(update={"max_steps": max_steps})}
        )
    if output_dir is not None:
        config = config.model_copy(update={"output_dir": str(output_dir)})
    return config


def with_absolute_paths(config: TrainConfig) -> TrainConfig:
    """Paths resolved against this working directory, for workers that start elsewhere."""
    entries = [
        e.model_copy(update={"path": str(Path(e.path).resolve())}) if e.path else e
        for e in config.mixture
    ]
    update: dict = {"output_dir": str(config.output_path().resolve()), "mixture": entries}
    if Path(config.model.name).exists():  # a local model folder, not a Hub id
        update["model"] = config.model.model_copy(
            update={"name": str(Path(config.model.name).resolve())}
        )
    return config.model_copy(update=update)


def train_on_ray(
    config: TrainConfig,
    workers: int,
    address: str | None = None,
    use_gpu: bool | None = None,
    resume: bool | None = None,
) -> dict:
    """Train in `workers` Ray Train workers (one per GPU when the cluster has them); returns the
    first worker's summary. Several nodes need output_dir on storage they all share."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    config = with_absolute_paths(config)
    ray.init(address=address, ignore_reinit_error=True)
    if use_gpu is None:
        use_gpu = ray.cluster_resources().get("GPU", 0) >= workers
    trainer = TorchTrainer(
        _ray_worker,
        train_loop_config={"config": config.model_dump(mode="json"), "resume": resume},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu),
        run_config=RunConfig(name=config.name, storage_path=str(config.output_path() / "ray")),
    )
    trainer.fit()
    report = json.loads((config.output_path() / REPORT).read_text())
    return {key: value for key, value in report.items() if key not in ("losses", "eval_losses")}


def _ray_worker(loop_config: dict) -> None:
    from curation.train.loop import train

    train(TrainConfig.model_validate(loop_config["config"]), resume=loop_config["resume"])


def run_training(
    config: TrainConfig,
    resume: bool | None = None,
    ray_workers: int | None = None,
    address: str | None = None,
    log: Callable[[str], None] = print,
) -> dict | None:
    """Train here or on Ray; the summary, or None in the non-main processes of a launcher.
    The output folder is claimed and locked first (`curation.outdir`), by the first process of
    a launcher for all of them."""
    first = os.environ.get("RANK", "0") == "0"  # torchrun (accelerate launch) numbers processes
    claim = OutputFolder(config.output_path(), "train", config_hash(config))
    with claim if first else nullcontext():
        if ray_workers:
            return train_on_ray(config, ray_workers, address=address, resume=resume)
        from accelerate import PartialState

        from curation.train.loop import train

        result = train(config, resume=resume, log=log)
        return result.summary() if PartialState().is_main_process else None


def summary_table(name: str, info: dict) -> Table:
    """The end-of-run table: steps, losses, throughput, and what became of the data per source."""
    table = Table(title=f"train {name} -> {info['output_dir']}", show_header=False)
    table.add_row("steps", f"{info['start_step']} -> {info['steps']}")
    for key in ("loss", "eval_loss"):
        if info.get(key) is not None:
            table.add_row(key.replace("_", " "), f"{info[key]:.4f}")
    table.add_row("tokens/s", f"{info['tokens_per_s']:,.0f}")
    for source, counts in info["data"].items():
        used = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in counts.items())
        table.add_row(f"  {source}", used)
    table.add_row("weights", str(info["final_dir"]))
    return table
