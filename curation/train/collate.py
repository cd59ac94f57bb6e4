"""Samples to training sequences: chat template with one image token per image, labels only on
assistant replies, over-long samples truncated or dropped by rule, packing, padded batches."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from curation.config import ConfigError
from curation.train.config import DataConfig
from curation.train.images import decode_image
from curation.train.mixture import Sample

IGNORE = -100  # label of every token that is not part of an assistant reply


@dataclass
class Encoded:
    """One sample as token ids, labels and its images' tensors."""

    source: str
    input_ids: list[int]
    labels: list[int]
    pixels: list[dict] = field(default_factory=list)  # one entry per image
    tiles: int = 0
    turns_dropped: int = 0
    cuts: dict[str, int] = field(default_factory=dict)  # the sample's, from the mixture


@dataclass
class Dropped:
    """A sample that could not be used, and why."""

    source: str
    reason: str  # too_long | too_many_images | bad_image | no_turns
    cuts: dict[str, int] = field(default_factory=dict)


@dataclass
class Batch:
    """Model inputs for one micro-batch, the stream state after it, and what it holds."""

    inputs: dict
    state: dict
    tokens: int
    target_tokens: int
    samples: int
    lengths: list[int] = field(default_factory=list)  # tokens of each sample
    report: dict = field(default_factory=dict)  # the data counters up to and including it


class DataReport:
    """Counters per source: samples used, dropped by reason, truncated, tokens."""

    def __init__(self, counts: dict | None = None) -> None:
        self.counts: dict[str, Counter] = {k: Counter(v) for k, v in (counts or {}).items()}

    def add(self, source: str, key: str, n: int = 1) -> None:
        self.counts.setdefault(source, Counter())[key] += n

    def record(self, item: Encoded | Dropped) -> None:
        for key, n in item.cuts.items():  # the mixture's cuts on its pairs (train/cuts.py)
            self.add(item.source, key, n)
        if isinstance(item, Dropped):
            self.add(item.source, f"dropped_{item.reason}")
            return
        self.add(item.source, "samples")
        self.add(item.source, "tokens", len(item.input_ids))
        self.add(item.source, "target_tokens", sum(label != IGNORE for label in item.labels))
        self.add(item.source, "tiles", item.tiles)
        if item.turns_dropped:
            self.add(item.source, "truncated")
            self.add(item.source, "turns_dropped", item.turns_dropped)

    def as_dict(self) -> dict:
        return {source: dict(sorted(c.items())) for source, c in sorted(self.counts.items())}


def chat_messages(turns: list[tuple[str, str]], n_images: int) -> list[dict]:
    """Docmatix / Mantis layout: every image at the start of the first user turn."""
    messages = []
    for index, (user, assistant) in enumerate(turns):
        content = [{"type": "image"}] * (n_images if index == 0 else 0)
        content.append({"type": "text", "text": user})
        messages.append({"role": "user", "content": content})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": assistant}]})
    return messages


def turn_pieces(processor: Any, messages: list[dict]) -> list[tuple[str, str]]:
    """(prompt text, reply text) per turn, cut from the chat template's own rendering.

    The prompt of turn k is what the template adds up to the generation prompt; the reply is
    what the assistant message adds after it (its end-of-turn token included), without the
    trailing whitespace, which goes to the next prompt. The template must render each
    conversation as a prefix of its continuation; one that does not is refused.
    """

    def render(upto: int, generation: bool) -> str:
        return processor.apply_chat_template(
            messages[:upto], tokenize=False, add_generation_prompt=generation
        )

    pieces, done = [], ""
    for end in range(1, len(messages), 2):
        prompt, full = render(end, True), render(end + 1, False)
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise ConfigError(
                "model: its chat template does not render a conversation as a prefix of its "
                "continuation, so assistant replies cannot be located for the loss mask"
            )
        reply = full[len(prompt) :].rstrip()
        pieces.append((prompt[len(done) :], reply))
        done = prompt + reply
    return pieces


class SampleEncoder:
    """Encodes samples for one processor and image family under the data rules."""

    def __init__(
        self, processor: Any, family: Any, data: DataConfig, max_images: dict[str, int | None]
    ) -> None:
        self.processor, self.family, self.data = processor, family, data
        self.tokenizer = processor.tokenizer
        self.max_images = max_images
        self.image_token = processor.image_token
        self._image_split = re.compile(f"(?<={re.escape(self.image_token)})")

    def _text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def encode(self, sample: Sample) -> Encoded | Dropped:
        """The sample encoded, or why it cannot be; either way with the counts of the cuts the
        mixture made up to it, so that the report counts them when it counts the sample."""
        item = self._encode(sample)
        item.cuts = sample.cuts
        return item

    def _encode(self, sample: Sample) -> Encoded | Dropped:
        # A literal image token in the text would claim an image that is not there.
        turns = [
            (u.replace(self.image_token, ""), a.replace(self.image_token, ""))
            for u, a in sample.turns
            if u.strip() and a.strip()
        ]
        if not turns:
            return Dropped(sample.source, "no_turns")
        limit = self.max_images.get(sample.source)
        if limit is not None and len(sample.images) > limit:
            return Dropped(sample.source, "too_many_images")
        try:
            images = [decode_image(data) for data in sample.images]
        except (ValueError, OSError):
            return Dropped(sample.source, "bad_image")
        plans = iter(self.family.plan([image.size for image in images]))
        queue = iter(images)
        encoded = Encoded(sample.source, [], [])
        pieces = turn_pieces(self.processor, chat_messages(turns, len(images)))
        for index, (prompt, reply) in enumerate(pieces):
            ids, labels, pixels, tiles = [], [], [], 0
            # One processor call per image, so that each image gets its own size.
            for chunk in self._image_split.split(prompt):
                if chunk.endswith(self.image_token):
                    chunk_ids, chunk_pixels, chunk_tiles = self.family.encode(
                        chunk, next(queue), next(plans)
                    )
                    pixels.append(chunk_pixels)
                    tiles += chunk_tiles
                else:
                    chunk_ids = self._text_ids(chunk)
                ids += chunk_ids
                labels += [IGNORE] * len(chunk_ids)
            reply_ids = self._text_ids(reply)
            ids += reply_ids
            labels += reply_ids
            if len(encoded.input_ids) + len(ids) > self.data.max_length:
                # Cut at a turn boundary: a cut inside the image tokens would break the model's
                # image-token count, and a cut inside a reply would teach a truncated answer.
                if index == 0 or self.data.overlong == "drop":
                    return Dropped(sample.source, "too_long")
                encoded.turns_dropped = len(pieces) - index
                break
            encoded.input_ids += ids
            encoded.labels += labels
            encoded.pixels += pixels
            encoded.tiles += tiles
        return encoded


def pack_rows(
    items: Iterator[tuple[Encoded | Dropped, dict]],
    report: DataReport,
    enabled: bool,
    max_tokens: int,
    max_tiles: int,
) -> Iterator[tuple[list[Encoded], dict]]:
    """Rows of one sample each, or (packing) of consecutive samples under both limits, in stream
    order. Each row comes with the stream state after its last sample, so that a resume starts
    with the sample that did not fit; the report counts a sample when its row is complete."""
    row: list[Encoded] = []
    pending: list[Encoded | Dropped] = []
    state: dict = {}
    for item, item_state in items:
        if isinstance(item, Encoded) and row:
            fits = (
                enabled
                and sum(len(e.input_ids) for e in row) + len(item.input_ids) <= max_tokens
                and sum(e.tiles for e in row) + item.tiles <= max_tiles
            )
            if not fits:
                for done in pending:
                    report.record(done)
                pending = []
                yield row, state
                row = []
        pending.append(item)
        if isinstance(item, Encoded):
            row.append(item)
        state = item_state


def collate(rows: list[list[Encoded]], pad_id: int, family: Any, packed: bool) -> dict:
    """Right-padded tensors. Packed rows carry position ids that restart at every sample (and at
    the padding), so that attention stays within each sample; unpacked rows an attention mask."""
    import torch

    longest = max(sum(len(e.input_ids) for e in row) for row in rows)
    input_ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), longest), IGNORE, dtype=torch.long)
    attention = torch.zeros((len(rows), longest), dtype=torch.long)
    positions = torch.zeros((len(rows), longest), dtype=torch.long)
    for index, row in enumerate(rows):
        start = 0
        for sample in row:
            end = start + len(sample.input_ids)
            input_ids[index, start:end] = torch.tensor(sample.input_ids)
            labels[index, start:end] = torch.tensor(sample.labels)
            positions[index, start:end] = torch.arange(end - start)
            start = end
        attention[index, :start] = 1
        positions[index, start:] = torch.arange(longest - start)
    inputs = {"input_ids": input_ids, "labels": labels}
    if packed:
        inputs["position_ids"] = positions
    else:
        inputs["attention_mask"] = attention
    pixel_rows = [[p for sample in row for p in sample.pixels] for row in rows]
    if any(pixel_rows):
        inputs.update(family.batch(pixel_rows))
    return inputs


def batches(
    rows: Iterator[tuple[list[Encoded], dict]],
    batch_size: int,
    pad_id: int,
    family: Any,
    packed: bool,
    report: DataReport | None = None,
) -> Iterator[Batch]:
    """Micro-batches of `batch_size` rows, each with a snapshot of the report's counters."""
    group: list[list[Encoded]] = []
    for row, state in rows:
        group.append(row)
        if len(group) == batch_size:
            batch = _batch(group, state, pad_id, family, packed)
            batch.report = report.as_dict() if report else {}
            yield batch
            group = []


def _batch(
    group: list[list[Encoded]], state: dict, pad_id: int, family: Any, packed: bool
) -> Batch:
    samples = [sample for row in group for sample in row]
    return Batch(
        inputs=collate(group, pad_id, family, packed),
        state=state,
        tokens=sum(len(s.input_ids) for s in samples),
        target_tokens=sum(sum(label != IGNORE for label in s.labels) for s in samples),
        samples=len(samples),
        lengths=[len(s.input_ids) for s in samples],
    )


def eval_batches(encoded: list[Encoded], batch_size: int, pad_id: int, family: Any) -> list[Batch]:
    """Fixed, unpacked batches of the held-out samples."""
    return [
        _batch([[s] for s in encoded[i : i + batch_size]], {}, pad_id, family, packed=False)
        for i in range(0, len(encoded), batch_size)
    ]
