"""What a training process is fed: its share of the mixture stream (every world-size-th sample),
encoded, packed and batched (`rank_batches`), prepared ahead in a thread (`prefetch`) so that
data preparation overlaps the model's steps. Each batch carries the stream state after it, so
a checkpoint taken at any batch resumes with the very next sample.
"""

from __future__ import annotations

from collections.abc import Iterator

from curation.train.collate import Batch, DataReport, SampleEncoder, batches, pack_rows
from curation.train.config import TrainConfig
from curation.train.mixture import MixtureStream


def rank_batches(
    mixture: MixtureStream,
    encoder: SampleEncoder,
    config: TrainConfig,
    state: dict | None,
    report: DataReport,
    rank: int = 0,
    world: int = 1,
) -> Iterator[Batch]:
    """This process's micro-batches from stream state `state` on: samples rank, rank + world, ..."""
    samples = (
        (sample, after)
        for sample, after in mixture.iterate(state)
        if (after["emitted"] - 1) % world == rank
    )
    packing = config.data.packing
    rows = pack_rows(
        ((encoder.encode(sample), after) for sample, after in samples),
        report,
        packing.enabled,
        packing.max_tokens or config.data.max_length,
        packing.max_tiles,
    )
    pad_id = encoder.tokenizer.pad_token_id
    return batches(
        rows, config.schedule.batch_size, pad_id, encoder.family, packing.enabled, report
    )


def prefetch(items: Iterator[Batch], depth: int = 4) -> Iterator[Batch]:
    """The iterator run ahead in a thread (image decoding and resizing release the GIL), so
    that data preparation overlaps the model's steps. Each batch carries its own stream state
    and counters, so running ahead changes nothing that a checkpoint stores."""
    import queue
    import threading

    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop, done = threading.Event(), object()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def fill() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)
        put(done)

    threading.Thread(target=fill, daemon=True, name="train-data").start()
    try:
        while (item := buffer.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
