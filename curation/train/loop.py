"""The training loop: plain torch driven by accelerate's Accelerator, so that the same code runs on
one device, on several GPUs under `accelerate launch` (DDP or FSDP), and in Ray Train workers.

Every process reads the same mixture stream and keeps every world-size-th sample; a checkpoint
stores the model, optimizer, scheduler and RNG states (accelerate) and, per process, the stream
position and data counters, so a resumed run continues with the very next sample.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curation.config import ConfigError
from curation.seeding import content_id
from curation.train.collate import (
    Batch,
    DataReport,
    Encoded,
    SampleEncoder,
    eval_batches,
)
from curation.train.config import TrainConfig
from curation.train.feed import prefetch, rank_batches
from curation.train.images import image_family
from curation.train.mixture import build_mixture
from curation.train.model import load_model, parameter_counts

CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.json"
REPORT = "report.json"  # the summary of the last run, with the loss history


@dataclass
class TrainResult:
    """What a run did: steps, losses, eval losses, data counts, where the weights went."""

    output_dir: Path
    start_step: int
    steps: int
    losses: list[tuple[int, float]] = field(default_factory=list)
    eval_losses: list[tuple[int, float]] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    final_dir: Path | None = None
    tokens_per_s: float = 0.0
    trainable_parameters: int = 0

    def summary(self) -> dict:
        """JSON-able: what report.json holds besides the loss history."""
        return {
            "output_dir": str(self.output_dir),
            "start_step": self.start_step,
            "steps": self.steps,
            "loss": self.losses[-1][1] if self.losses else None,
            "eval_loss": self.eval_losses[-1][1] if self.eval_losses else None,
            "tokens_per_s": self.tokens_per_s,
            "trainable_parameters": self.trainable_parameters,
            "data": self.data,
            "final_dir": str(self.final_dir) if self.final_dir else None,
        }


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint (one with its trainer state), if any."""
    done = sorted((output_dir / CHECKPOINTS).glob("step-*/" + TRAINER_STATE))
    return done[-1].parent if done else None


def config_hash(config: TrainConfig) -> str:
    return content_id(json.dumps(config.model_dump(mode="json"), sort_keys=True))


def _precision(config: TrainConfig) -> str:
    import torch

    if config.precision == "fp32":
        return "no"
    has_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if config.precision == "bf16" and not has_bf16:
        raise ConfigError("precision: bf16 needs a GPU that supports it (use auto or fp32)")
    return "bf16" if has_bf16 else "no"


class Trainer:
    """One run of one config in this process."""

    def __init__(self, config: TrainConfig, log: Callable[[str], None] = print) -> None:
        import torch
        from accelerate import Accelerator
        from accelerate.utils import DistributedType, set_seed

        self.config = config
        self.out = config.output_path()
        self.accelerator = Accelerator(
            mixed_precision=_precision(config),
            step_scheduler_with_optimizer=False,
            # Without a GPU, only cpu=True makes accelerate join a torchrun / Ray process group.
            cpu=not torch.cuda.is_available(),
        )
        acc = self.accelerator
        self.log = log if acc.is_main_process else (lambda _message: None)
        if config.final_save() == "merged" and acc.distributed_type == DistributedType.FSDP:
            raise ConfigError("save: merged is not available under FSDP; save the adapter")
        set_seed(config.seed)
        # The mixture first: a missing dataset is reported before a model is loaded.
        self.mixture = build_mixture(
            config.mixture, config.seed, config.data.eval.fraction, self.log
        )
        model, self.processor = load_model(config, bf16=acc.mixed_precision == "bf16")
        self.family = image_family(model.config.model_type, self.processor, config.data.images)
        if config.data.packing.enabled and not self.family.packing:
            raise ConfigError(
                f"data.packing: not supported for '{model.config.model_type}' models; disable it"
            )
        self.trainable, total = parameter_counts(model)
        self.log(
            f"model {config.model.name} ({model.config.model_type}): {total / 1e6:.1f}M parameters, "
            f"{self.trainable / 1e6:.2f}M trainable ({config.finetune}) on {acc.device} "
            f"x{acc.num_processes}, precision {acc.mixed_precision}"
        )
        for source, weight in zip(self.mixture.sources, self.mixture.weights, strict=True):
            share = weight / sum(self.mixture.weights)
            cut = f", cuts: {source.cut.describe()}" if source.cut else ""
            self.log(f"mixture: {source.label}: {source.rows} rows, share {share:.1%}{cut}")
        max_images = {entry.label(): entry.max_images for entry in config.mixture}
        self.encoder = SampleEncoder(self.processor, self.family, config.data, max_images)
        optim = config.optim
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            trainable,
            lr=optim.lr,
            betas=optim.betas,
            weight_decay=optim.weight_decay,
            # The fused kernel (CPU and CUDA) is ~10x faster than the per-tensor loop on CPU;
            # FSDP's sharded parameters keep the default.
            fused=acc.distributed_type != DistributedType.FSDP
            and all(p.dtype.is_floating_point for p in trainable),
        )
        from transformers import get_cosine_schedule_with_warmup

        max_steps = config.schedule.max_steps
        scheduler = get_cosine_schedule_with_warmup(
            optimizer, math.ceil(optim.warmup_ratio * max_steps), max_steps
        )
        self.model, self.optimizer, self.scheduler = acc.prepare(model, optimizer, scheduler)
        self.eval_set = self._eval_batches()

    # -- data -----------------------------------------------------------------------------

    def _eval_batches(self) -> list[tuple[Batch, float]]:
        """This process's share of the held-out batches, each with its weight; every process
        runs the same number of forward passes (FSDP needs that), padding with weight 0."""
        spec = self.config.data.eval
        if not spec.fraction or not spec.max_samples:
            return []
        quota = math.ceil(spec.max_samples / len(self.mixture.sources))
        samples = [s for source in self.mixture.sources for s in source.eval_samples(quota)]
        acc = self.accelerator
        mine = samples[acc.process_index :: acc.num_processes]
        encoded = [e for e in map(self.encoder.encode, mine) if isinstance(e, Encoded)]
        batch_size = self.config.schedule.batch_size
        own = eval_batches(encoded, batch_size, self.encoder.tokenizer.pad_token_id, self.family)
        each = math.ceil(math.ceil(len(samples) / acc.num_processes) / batch_size)
        self.log(f"eval: {len(samples)} held-out samples")
        if not samples:
            return []
        if not own:
            raise ConfigError("data.eval: no held-out sample could be encoded")
        return [(b, 1.0) for b in own] + [(own[0], 0.0)] * (each - len(own))

    def _to_device(self, inputs: dict) -> dict:
        return {key: value.to(self.accelerator.device) for key, value in inputs.items()}

    # -- steps ----------------------------------------------------------------------------

    def _reduce(self, *values: Any) -> list[float]:
        """Sums over all processes, in one collective and one device sync (values may be
        floats or 0-d tensors already on the device)."""
        import torch

        device = self.accelerator.device
        tensor = torch.stack(
            [torch.as_tensor(v, dtype=torch.float32, device=device).reshape(()) for v in values]
        )
        return self.accelerator.reduce(tensor, reduction="sum").tolist()

    def step(self, micro: list[Batch]) -> Any:
        """One optimizer step over the micro-batches; returns this process's share of the mean
        loss per answer token as a 0-d tensor on the device (no sync per micro-batch)."""
        import torch

        acc = self.accelerator
        # The loss is summed over answer tokens and divided by their count in the whole step
        # (all micro-batches, all processes), so that every token weighs the same; times the
        # process count because DDP / FSDP average gradients over processes.
        (targets,) = self._reduce(sum(b.target_tokens for b in micro))
        targets = max(targets, 1.0)
        self.model.train()
        local = torch.zeros((), device=acc.device)
        for index, batch in enumerate(micro):
            last = index == len(micro) - 1
            sync = nullcontext() if last or acc.num_processes == 1 else acc.no_sync(self.model)
            with sync:
                out = self.model(**self._to_device(batch.inputs), num_items_in_batch=1)
                loss = out.loss / targets
                acc.backward(loss * acc.num_processes)
            local += loss.detach().float()
        if self.config.optim.max_grad_norm:
            acc.clip_grad_norm_(self.model.parameters(), self.config.optim.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return local

    def evaluate(self) -> float | None:
        """Mean loss per answer token over the held-out set, all processes together."""
        import torch

        if not self.eval_set:
            return None
        self.model.eval()
        total = tokens = 0.0
        with torch.no_grad():
            for batch, weight in self.eval_set:
                out = self.model(**self._to_device(batch.inputs), num_items_in_batch=1)
                total += weight * float(out.loss)
                tokens += weight * batch.target_tokens
        total, tokens = self._reduce(total, tokens)
        return total / tokens if tokens else None

    # -- checkpoints ----------------------------------------------------------------------

    def _data_state_path(self, checkpoint: Path) -> Path:
        return checkpoint / f"data_state_{self.accelerator.process_index}.json"

    def save_checkpoint(self, step: int, data_state: dict, report: DataReport, history: dict):
        """Write checkpoints/step-N atomically (a temporary folder renamed when complete)."""
        acc = self.accelerator
        root = self.out / CHECKPOINTS
        final, partial = root / f"step-{step:06d}", root / f".partial-step-{step:06d}"
        if acc.is_main_process:
            shutil.rmtree(partial, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(partial))
        self._data_state_path(partial).write_text(
            json.dumps({"stream": data_state, "report": report.as_dict()})
        )
        data = self._gather_report(report)  # every process's counts, the cuts' among them
        acc.wait_for_everyone()
        if acc.is_main_process:
            state = {"step": step, "config_hash": config_hash(self.config), "data": data}
            state.update(history)
            (partial / TRAINER_STATE).write_text(json.dumps(state, indent=1))
            shutil.rmtree(final, ignore_errors=True)
            partial.rename(final)
            limit = self.config.schedule.save_total_limit
            for old in sorted(root.glob("step-*"))[: -limit if limit else None]:
                shutil.rmtree(old)
            self.log(f"checkpoint: {final}")
        acc.wait_for_everyone()

    def load_checkpoint(self, checkpoint: Path) -> tuple[int, dict | None, DataReport, dict]:
        acc = self.accelerator
        acc.load_state(str(checkpoint))
        state = json.loads((checkpoint / TRAINER_STATE).read_text())
        if state.get("config_hash") != config_hash(self.config):
            self.log("resume: the config changed since this checkpoint was written")
        path = self._data_state_path(checkpoint)
        if not path.exists():  # a different number of processes: continue near rank 0's place
            self.log("resume: process count changed; the data position is approximate")
            path = checkpoint / "data_state_0.json"
        data = json.loads(path.read_text())
        history = {k: state.get(k, []) for k in ("losses", "eval_losses")}
        return state["step"], data["stream"], DataReport(data["report"]), history

    # -- the run --------------------------------------------------------------------------

    def run(self, resume: bool | None = None) -> TrainResult:
        """Train to max_steps; resume=None resumes when a checkpoint exists, True requires one."""
        acc, schedule = self.accelerator, self.config.schedule
        checkpoint = latest_checkpoint(self.out) if resume is not False else None
        if resume and checkpoint is None:
            raise ConfigError(f"--resume: no checkpoint under {self.out / CHECKPOINTS}")
        step, stream_state, report = 0, None, DataReport()
        history: dict[str, list] = {"losses": [], "eval_losses": []}
        if checkpoint is not None:
            step, stream_state, report, history = self.load_checkpoint(checkpoint)
            self.log(f"resume: from {checkpoint} at step {step}")
            if step >= schedule.max_steps:
                self.log("resume: already at max_steps (--no-resume starts over)")
        result = TrainResult(self.out, step, step, trainable_parameters=self.trainable)
        data = prefetch(
            rank_batches(
                self.mixture,
                self.encoder,
                self.config,
                stream_state,
                report,
                acc.process_index,
                acc.num_processes,
            )
        )
        eval_every = self.config.data.eval.every_steps
        counts = report
        window_tokens, window_start = 0.0, time.perf_counter()
        run_tokens, run_start = 0.0, time.perf_counter()
        while step < schedule.max_steps:
            micro = [next(data) for _ in range(schedule.grad_accum)]
            loss, tokens = self._reduce(self.step(micro), sum(b.tokens for b in micro))
            step += 1
            window_tokens += tokens
            run_tokens += tokens
            history["losses"].append([step, loss])
            result.losses.append((step, loss))
            stream_state, counts = micro[-1].state, DataReport(micro[-1].report)
            checkpoint_now = step % schedule.save_every == 0 or step == schedule.max_steps
            if (eval_every and step % eval_every == 0) or checkpoint_now:
                self._evaluate_at(step, history, result)
            if step % schedule.log_every == 0 or step == schedule.max_steps:
                self._log_step(
                    step, loss, window_tokens / max(time.perf_counter() - window_start, 1e-9)
                )
                window_tokens, window_start = 0.0, time.perf_counter()
            if checkpoint_now:
                self.save_checkpoint(step, stream_state, counts, history)
        data.close()  # stops the prefetching thread
        result.steps = step
        result.tokens_per_s = run_tokens / max(time.perf_counter() - run_start, 1e-9)
        return self._finish(result, counts, history)

    def _evaluate_at(self, step: int, history: dict[str, list], result: TrainResult) -> None:
        eval_loss = self.evaluate()
        if eval_loss is not None:
            history["eval_losses"].append([step, eval_loss])
            result.eval_losses.append((step, eval_loss))
            self.log(f"step {step}: eval loss {eval_loss:.4f}")

    def _log_step(self, step: int, loss: float, tokens_per_s: float) -> None:
        lr = self.scheduler.get_last_lr()[0]
        self.log(
            f"step {step}/{self.config.schedule.max_steps}: loss {loss:.4f}, lr {lr:.2e}, "
            f"{tokens_per_s:,.0f} tokens/s"
        )

    def _finish(
        self, result: TrainResult, counts: DataReport, history: dict[str, list]
    ) -> TrainResult:
        """The final model and the run's report, written once every rank is done."""
        result.data = self._gather_report(counts)
        self._log_cuts(result.data)
        result.final_dir = self.save_final()
        if self.accelerator.is_main_process:
            report_file = self.out / REPORT
            report_file.write_text(json.dumps({**result.summary(), **history}, indent=1))
        self.accelerator.wait_for_everyone()
        return result

    def _log_cuts(self, data: dict) -> None:
        """What the mixture's cuts kept and left out, per entry that has cuts."""
        for source, counts in data.items():
            cut = {k: n for k, n in counts.items() if k.startswith("pairs_") or k == "samples_cut"}
            if cut:
                said = ", ".join(f"{key.replace('_', ' ')} {n:,}" for key, n in cut.items())
                self.log(f"cuts: {source}: {said}")

    def _gather_report(self, report: DataReport) -> dict:
        from accelerate.utils import gather_object

        merged = DataReport()
        for counts in gather_object([report.as_dict()]):
            for source, values in counts.items():
                for key, n in values.items():
                    merged.add(source, key, n)
        return merged.as_dict()

    def save_final(self) -> Path:
        """The weights the config asks for (adapter, merged or full) and the processor."""
        acc = self.accelerator
        final = self.out / "final"
        kind = self.config.final_save()
        state_dict = acc.get_state_dict(self.model)
        if acc.is_main_process:
            shutil.rmtree(final, ignore_errors=True)
            unwrapped: Any = acc.unwrap_model(self.model)
            if kind == "merged":
                unwrapped.merge_and_unload().save_pretrained(final)
            else:
                unwrapped.save_pretrained(final, state_dict=state_dict)
            self.processor.save_pretrained(final)
            (final / "train_config.json").write_text(
                json.dumps(self.config.model_dump(mode="json"), indent=1)
            )
            self.log(f"saved {kind} weights and the processor to {final}")
        acc.wait_for_everyone()
        return final


def train(
    config: TrainConfig, resume: bool | None = None, log: Callable[[str], None] = print
) -> TrainResult:
    """Fine-tune as the config says, in this process (one of several under a launcher)."""
    return Trainer(config, log).run(resume)
