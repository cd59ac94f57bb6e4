"""The fine-tune stage on CPU with a tiny random-init Idefics3 (no download): data path, loss mask,
image budget, packing, a 30-step run whose loss goes down, checkpoints and an exact resume."""

from __future__ import annotations

import io
import math
import re
import shutil
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from output_fixtures import document_units
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from curation.cli import app
from curation.config import ConfigError
from curation.output.shards import DatasetWriter
from curation.schema import SAMPLE_SCHEMA, Decision, Outcome, Pair, Reply, Unit
from curation.train.collate import (
    IGNORE,
    DataReport,
    Dropped,
    Encoded,
    SampleEncoder,
    collate,
    pack_rows,
)
from curation.train.config import (
    DataConfig,
    ImagesConfig,
    MixtureEntry,
    RandomInitConfig,
    TrainConfig,
)
from curation.train.images import Idefics3Images
from curation.train.loop import Trainer, latest_checkpoint, train
from curation.train.mixture import Sample, build_mixture
from curation.train.model import random_init_processor

ROOT = Path(__file__).resolve().parents[1]


def png(color: str, size: tuple[int, int]) -> bytes:
    image = Image.new("RGB", size, color)
    ImageDraw.Draw(image).rectangle([2, 2, size[0] // 2, size[1] // 2], fill="white")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def write_dataset(folder: Path, name: str, rows: int, pages: int, color: str) -> Path:
    """A curated dataset folder: data/*.parquet in the Sample layout, small real PNG pages."""
    table = [
        {
            "id": f"{name}-{i}",
            "doc_id": name,
            "pages": list(range(pages)),
            "images": [
                {"bytes": png(color, (40 + 8 * p, 56)), "path": f"{name}-{i}-{p}.png"}
                for p in range(pages)
            ],
            "texts": [
                {
                    "user": f"What is on page {p + 1} of {name} {i}?",
                    "assistant": f"Page {p + 1} shows a {color} box, number {i}.",
                    "source": f"{name}.pdf",
                }
                for p in range(pages)
            ],
            "page_meta": [],
            "qa_meta": [],
        }
        for i in range(rows)
    ]
    (folder / "data").mkdir(parents=True, exist_ok=True)
    path = folder / "data" / "train-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(table, schema=SAMPLE_SCHEMA), path, row_group_size=3)
    return folder


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("curated")
    return {
        "alpha": write_dataset(root / "alpha", "alpha", rows=6, pages=2, color="red"),
        "beta": write_dataset(root / "beta", "beta", rows=6, pages=1, color="blue"),
    }


@pytest.fixture(scope="module")
def processor():
    return random_init_processor(RandomInitConfig())


def tiny_config(datasets: dict[str, Path], out: Path, **overrides) -> TrainConfig:
    raw = {
        "name": "tiny-test",
        "output_dir": str(out),
        "model": {"name": "tiny-random"},
        "finetune": "full",
        "mixture": [
            {"path": str(datasets["alpha"]), "weight": 1},
            {"path": str(datasets["beta"]), "weight": 1},
        ],
        "data": {"max_length": 256, "images": {"max_tiles": 8}, "eval": {"fraction": 0.2}},
        "optim": {"lr": 3e-3},
        "schedule": {
            "max_steps": 30,
            "batch_size": 1,
            "save_every": 10,
            "save_total_limit": 3,
            "log_every": 10,
        },
        "precision": "fp32",
    }
    raw.update(overrides)
    return TrainConfig.model_validate(raw)


def encoder_for(processor, **data) -> SampleEncoder:
    config = DataConfig.model_validate(data)
    return SampleEncoder(processor, Idefics3Images(processor, config.images), config, {})


def sample(turns: int = 2, pages: int = 2, answer_words: int = 3) -> Sample:
    return Sample(
        source="s",
        id="x",
        images=[png("green", (48, 40)) for _ in range(pages)],
        turns=[
            (f"Question {t}?", " ".join(f"answer{t}-{w}" for w in range(answer_words)))
            for t in range(turns)
        ],
    )


def test_only_assistant_replies_carry_labels_token_by_token(processor):
    item = encoder_for(processor, images={"max_tiles": 6}).encode(sample(turns=3))
    assert isinstance(item, Encoded)
    runs, current = [], []
    for token, label in zip(item.input_ids, item.labels, strict=True):
        if label == IGNORE:
            if current:
                runs.append(current)
            current = []
        else:
            assert label == token
            current.append(token)
    if current:
        runs.append(current)
    expected = [f" answer{t}-0 answer{t}-1 answer{t}-2<end_of_utterance>" for t in range(3)]
    assert [processor.tokenizer.decode(run) for run in runs] == expected
    # Each run is exactly the reply's own tokens: the answer and the end-of-turn token.
    tokenize = processor.tokenizer
    assert runs == [tokenize(text, add_special_tokens=False)["input_ids"] for text in expected]
    # Every image token is masked, and there are as many as the tiles need.
    image_id = processor.image_token_id
    image_positions = [i for i, token in enumerate(item.input_ids) if token == image_id]
    assert len(image_positions) == item.tiles * processor.image_seq_len
    assert all(item.labels[i] == IGNORE for i in image_positions)


def test_image_budget_splits_tiles_by_area(processor):
    family = Idefics3Images(processor, ImagesConfig(max_tiles=6))
    plans = family.plan([(640, 640), (48, 40)])
    # The big page gets 5 of 6 tiles (a 2 x 2 grid plus its thumbnail), the small one 1.
    assert [p["size"]["longest_edge"] for p in plans] == [64, 32]
    item = encoder_for(processor, images={"max_tiles": 6}).encode(
        Sample("s", "x", [png("red", (640, 640)), png("red", (48, 40))], [("q?", "a.")])
    )
    assert item.tiles == 6 and sum(p["pixel_values"].shape[0] for p in item.pixels) == 6
    with pytest.raises(ConfigError, match="tile_size"):
        Idefics3Images(processor, ImagesConfig(tile_size=64))


def test_overlong_samples_are_truncated_at_turns_or_dropped_and_counted(processor):
    long = sample(turns=4, answer_words=20)
    full = encoder_for(processor, max_length=4096).encode(long)
    limit = len(full.input_ids) - 10
    cut = encoder_for(processor, max_length=limit).encode(long)
    assert isinstance(cut, Encoded) and cut.turns_dropped == 1 and len(cut.input_ids) <= limit
    assert full.input_ids[: len(cut.input_ids)] == cut.input_ids
    dropped = encoder_for(processor, max_length=limit, overlong="drop").encode(long)
    assert dropped == Dropped("s", "too_long")
    assert encoder_for(processor, max_length=20).encode(long) == Dropped("s", "too_long")
    bad = Sample("s", "x", [b"not an image"], [("q?", "a.")])
    assert encoder_for(processor).encode(bad) == Dropped("s", "bad_image")
    report = DataReport()
    for item in (cut, dropped, Dropped("s", "bad_image")):
        report.record(item)
    counts = report.as_dict()["s"]
    assert counts["truncated"] == 1 and counts["turns_dropped"] == 1
    assert counts["dropped_too_long"] == 1 and counts["dropped_bad_image"] == 1


def fake(source: str, tokens: int, tiles: int) -> Encoded:
    return Encoded(source, list(range(1, tokens + 1)), [5] * tokens, tiles=tiles)


def test_packing_respects_token_and_tile_limits_and_resume_state():
    items = [
        (fake("a", 40, 2), {"n": 1}),
        (fake("a", 50, 2), {"n": 2}),
        (Dropped("a", "too_long"), {"n": 3}),
        (fake("b", 30, 5), {"n": 4}),  # would pass the token limit but not the tile limit
        (fake("b", 100, 1), {"n": 5}),
    ]
    report = DataReport()
    rows = list(pack_rows(iter(items), report, enabled=True, max_tokens=100, max_tiles=6))
    assert [[len(e.input_ids) for e in row] for row, _ in rows] == [[40, 50], [30]]
    # A row's state is after its last sample (and the drop before the next), never the leftover.
    assert [state["n"] for _, state in rows] == [3, 4]
    assert report.as_dict()["a"]["dropped_too_long"] == 1 and "b" in report.as_dict()
    assert report.as_dict()["b"]["samples"] == 1  # the 100-token leftover is not counted yet
    batch = collate([row for row, _ in rows], pad_id=0, family=None, packed=True)
    assert batch["position_ids"][0].tolist() == [*range(40), *range(50)]
    assert batch["position_ids"][1].tolist()[:30] == list(range(30))
    assert batch["labels"][1, 30:].eq(IGNORE).all() and "attention_mask" not in batch


def test_mixture_is_seeded_weighted_and_resumes_at_its_state(datasets):
    entries = tiny_config(datasets, Path("unused")).mixture
    stream = build_mixture(entries, seed=3, eval_fraction=0.2)
    first = [(s.source, s.id, st) for (s, st), _ in zip(stream.iterate(), range(40), strict=False)]
    again = [(s.source, s.id) for (s, _), _ in zip(stream.iterate(), range(40), strict=False)]
    assert [(a, b) for a, b, _ in first] == again
    resumed = [
        (s.source, s.id) for (s, _), _ in zip(stream.iterate(first[19][2]), range(20), strict=False)
    ]
    assert resumed == again[20:]
    held_out = {s.id for source in stream.sources for s in source.eval_samples(10)}
    assert held_out and not held_out & {sample_id for _, sample_id in again}
    assert {source for source, _ in again} == {"alpha", "beta"}
    capped = entries[0].model_copy(update={"max_samples": 2, "weight": None})
    assert build_mixture([capped], seed=0, eval_fraction=0).sources[0].rows == 2


def test_missing_dataset_names_the_folder_and_make_recipes(datasets, tmp_path):
    config = tiny_config(datasets, tmp_path / "run")
    config.mixture.append(config.mixture[0].model_copy(update={"path": "out/nothing", "name": "x"}))
    with pytest.raises(ConfigError, match=r"out/nothing.*make recipes"):
        build_mixture(config.mixture, 0, 0)
    config.mixture[-1] = config.mixture[-1].model_copy(update={"optional": True})
    assert len(build_mixture(config.mixture, 0, 0, log=lambda _m: None).sources) == 2
    path = tmp_path / "missing.yaml"
    path.write_text(
        "name: m\nmodel: {name: tiny-random}\nmixture: [{path: out/nothing}]\n"
        "schedule: {max_steps: 1}\n"
    )
    result = CliRunner().invoke(app, ["train", str(path)])
    assert result.exit_code == 2 and "make recipes" in result.output


def test_loss_goes_down_checkpoints_are_written_and_resume_is_exact(datasets, tmp_path):
    out = tmp_path / "run"
    # 12 steps of one sample, a checkpoint (and an eval) every 4: enough for the loss to fall,
    # three checkpoints to keep, and a resume that retraces steps (a high rate: 12 steps).
    schedule = {"max_steps": 12, "batch_size": 1, "save_every": 4, "save_total_limit": 3}
    config = tiny_config(datasets, out, schedule={**schedule, "log_every": 4}, optim={"lr": 1e-2})
    first = train(config, log=lambda _m: None)
    losses = [loss for _, loss in first.losses]
    assert first.steps == 12 and len(losses) == 12
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses
    assert [step for step, _ in first.eval_losses] == [4, 8, 12]
    assert first.eval_losses[-1][1] < first.eval_losses[0][1]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step-000004",
        "step-000008",
        "step-000012",
    ]
    assert (first.final_dir / "model.safetensors").exists()
    assert (first.final_dir / "processor_config.json").exists()
    data = first.data
    assert data["alpha"]["samples"] + data["beta"]["samples"] == 12  # 12 steps x 1 sample

    # Lose the last checkpoint: the rerun resumes at step 8 and retraces steps 9-12 exactly.
    shutil.rmtree(out / "checkpoints" / "step-000012")
    assert latest_checkpoint(out).name == "step-000008"
    second = train(config, log=lambda _m: None)
    assert second.start_step == 8 and [s for s, _ in second.losses] == list(range(9, 13))
    for (_, resumed), (_, original) in zip(second.losses, first.losses[8:], strict=True):
        assert math.isclose(resumed, original, rel_tol=1e-4), (resumed, original)
    assert second.data == first.data


def test_lora_adapts_only_the_language_model_and_saves_merged(datasets, tmp_path):
    config = tiny_config(
        datasets,
        tmp_path / "lora",
        finetune="lora",
        lora={"r": 4, "alpha": 8},
        save="merged",
        schedule={"max_steps": 2, "batch_size": 2, "save_every": 2},
        data={"max_length": 256, "images": {"max_tiles": 4}, "packing": {"enabled": True}},
    )
    trainer = Trainer(config, log=lambda _m: None)
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and ".text_model." in n for n in trainable)
    assert any("self_attn.q_proj" in n for n in trainable)
    assert any("mlp.down_proj" in n for n in trainable)
    result = trainer.run()
    assert result.steps == 2
    assert (result.final_dir / "model.safetensors").exists()
    assert not (result.final_dir / "adapter_config.json").exists()


def test_dora_saves_the_adapter_alone(datasets, tmp_path):
    config = tiny_config(
        datasets,
        tmp_path / "dora",
        finetune="lora",
        lora={"r": 4, "alpha": 8, "dora": True},
        schedule={"max_steps": 1, "batch_size": 1, "save_every": 1},
    )
    result = train(config, log=lambda _m: None)
    names = sorted(p.name for p in result.final_dir.iterdir())
    assert "adapter_config.json" in names and "adapter_model.safetensors" in names
    assert "model.safetensors" not in names
    assert '"use_dora": true' in (result.final_dir / "adapter_config.json").read_text()


def test_qwen2vl_pixel_budget_is_split_by_area():
    from types import SimpleNamespace

    from transformers import Qwen2VLImageProcessorPil

    from curation.train.images import Qwen2VLImages

    processor = SimpleNamespace(image_processor=Qwen2VLImageProcessorPil())
    family = Qwen2VLImages(processor, ImagesConfig(max_tiles=8, tile_size=448))
    plans = family.plan([(1700, 2200), (850, 1100)])
    assert [p["size"]["longest_edge"] // 448**2 for p in plans] == [6, 1]
    assert not family.packing


def test_cli_train_runs_and_prints_the_summary(datasets, tmp_path):
    config = tiny_config(datasets, tmp_path / "cli", schedule={"max_steps": 2, "save_every": 5})
    path = tmp_path / "tiny.yaml"
    import yaml

    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    result = CliRunner().invoke(app, ["train", str(path), "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    assert "0 -> 1" in result.output and "alpha" in result.output
    assert (tmp_path / "cli" / "checkpoints" / "step-000001").is_dir()


def test_shipped_train_configs_load():
    from curation.train.config import load_train_config

    names = {
        load_train_config(p).name
        for p in sorted((ROOT / "train").glob("*.yaml"))
        if p.name != "fsdp.yaml"
    }
    assert {"tiny-cpu", "smolvlm-256m", "smolvlm-2b-lora"} <= names


@pytest.mark.e2e
def test_ray_train_with_one_cpu_worker_trains_and_checkpoints(datasets, tmp_path, ray_local):
    """Ray Train on the session's Ray (train_on_ray joins the Ray it finds running)."""
    from curation.train.launch import train_on_ray

    config = tiny_config(
        datasets, tmp_path / "ray", schedule={"max_steps": 2, "save_every": 2, "batch_size": 1}
    )
    info = train_on_ray(config, workers=1, use_gpu=False)
    assert info["steps"] == 2 and math.isfinite(info["loss"]) and info["loss"] > 0
    assert (tmp_path / "ray" / "checkpoints" / "step-000002" / "trainer_state.json").exists()
    assert (tmp_path / "ray" / "final" / "model.safetensors").exists()


def test_ray_workers_get_absolute_paths(tmp_path, monkeypatch):
    from curation.train.launch import with_absolute_paths

    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "mine").mkdir(parents=True)
    config = TrainConfig.model_validate(
        {
            "name": "x",
            "model": {"name": "models/mine"},
            "mixture": [{"path": "out/docmatix"}],
            "output_dir": "out/train/x",
            "schedule": {"max_steps": 1},
        }
    )
    fixed = with_absolute_paths(config)
    assert fixed.model.name == str(tmp_path / "models" / "mine")
    assert fixed.mixture[0].path == str(tmp_path / "out" / "docmatix")
    assert fixed.output_dir == str(tmp_path / "out" / "train" / "x")
    hub = TrainConfig.model_validate(
        {"name": "h", "mixture": [{"path": "out/docmatix"}], "schedule": {"max_steps": 1}}
    )
    assert with_absolute_paths(hub).model.name == hub.model.name  # a Hub id stays an id


# -- cuts on the pairs (issue 33) ---------------------------------------------------------------

# Per row, its pairs: (question type, {axis: rating} or None when the judge left it unrated,
# grounding score or None); the comment says what the cut of RATED_CUT does with each pair.
RATED_ROWS = [
    [
        ("extractive", {"correctness": 5, "relevance": 4}, 0.9),  # kept
        ("extractive", {"correctness": 3, "relevance": 5}, 0.9),  # rating: correctness 3 < 4
        ("extractive", None, 0.9),  # unrated
    ],
    [
        ("yes_no", {"correctness": 5, "relevance": 5}, 0.9),  # question_type
        ("extractive", {"correctness": 4, "relevance": 4}, 0.4),  # score: grounding 0.4 < 0.5
        ("comparison", {"correctness": 4, "relevance": 4}, 0.9),  # kept
    ],
    [
        ("extractive", {"correctness": 2, "relevance": 2}, 0.9),  # rating
        ("extractive", None, 0.9),  # unrated: the row keeps no pair and is skipped
    ],
    [
        ("extractive", {"correctness": 5, "relevance": 1}, 0.9),  # rating: mean 3 < 3.5
        ("multi_hop", {"correctness": 5, "relevance": 5}, 0.9),  # kept
    ],
    [
        ("extractive", {"relevance": 5}, 0.9),  # unrated: no correctness rating
        ("extractive", {"correctness": 4, "relevance": 4}, 0.9),  # kept
        ("extractive", {"correctness": 5, "relevance": 5}, None),  # unscored: no grounding score
    ],
]
RATED_KEPT = {"r0p0", "r1p2", "r3p1", "r4p1"}
RATED_CUT = {
    "min_ratings": {"correctness": 4},
    "min_rating_mean": 3.5,
    "min_scores": {"grounding": 0.5},
    "unrated": "drop",
    "question_types": {"exclude": ["yes_no"]},
}
# What one pass over RATED_ROWS counts under RATED_CUT.
RATED_COUNTS = {
    "pairs_kept": 4,
    "pairs_cut_rating": 3,
    "pairs_cut_unrated": 3,
    "pairs_cut_question_type": 1,
    "pairs_cut_score": 1,
    "pairs_cut_unscored": 1,
    "samples_cut": 1,
}


def marks(text: str, dataset: str = "r") -> list[str]:
    """The pair marks (dataset letter, row, pair: r0p1) in a text, in order."""
    return re.findall(rf"\b{dataset}\d+p\d+\b", text)


def write_rated(folder: Path, rows: list[list[tuple]], name: str) -> Path:
    """A dataset written by the project's writer (DatasetWriter) from Outcomes whose pairs
    carry the decisions a run stores: grounding's score, the per-axis judge's ratings."""
    units = document_units(f"{name}0000", f"docs/{name}.pdf", n_pages=len(rows), pages_per_unit=1)
    writer = DatasetWriter(folder, rows_per_shard=100, inputs=[f"docs/{name}.pdf"])
    for r, (unit, pairs) in enumerate(zip(units, rows, strict=True)):
        made = []
        for p, (question_type, ratings, grounding) in enumerate(pairs):
            judge = Decision("judge", True, None, "unreadable")
            if ratings is not None:
                mean = sum(ratings.values()) / len(ratings)
                axes = [{"axis": a, "score": float(s)} for a, s in ratings.items()]
                judge = Decision("judge", True, mean, "", axes)
            grounded = Decision("grounding", True, grounding, "")
            made.append(
                Pair(
                    f"{unit['unit_id']}-{p}",
                    f"Question {name[0]}{r}p{p}?",
                    f"Answer {name[0]}{r}p{p} here.",
                    evidence_pages=unit["pages"],
                    question_type=question_type,
                    decisions=[grounded, judge],
                )
            )
        reply = Reply("p", "m", "", "stop", completion_tokens=1, pairs=made)
        writer.add(Outcome(Unit.from_row(unit), reply))
    writer.close({})
    return folder


@pytest.fixture(scope="module")
def rated(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rated")
    return {
        "rated": write_rated(root / "rated", RATED_ROWS, "rated"),
        # One row of five unrated pairs, for max_pairs_per_sample.
        "capped": write_rated(root / "capped", [[("extractive", None, 0.9)] * 5], "capped"),
    }


def cut_config(rated: dict[str, Path], out: Path, **overrides) -> TrainConfig:
    raw = {
        "name": "cuts",
        "output_dir": str(out),
        "seed": 1,
        "model": {"name": "tiny-random"},
        "finetune": "full",
        "mixture": [
            {"path": str(rated["rated"]), "weight": 3, **RATED_CUT},
            {"path": str(rated["capped"]), "weight": 1, "max_pairs_per_sample": 2},
        ],
        "data": {"max_length": 512, "images": {"max_tiles": 2}, "eval": {"fraction": 0}},
        "schedule": {"max_steps": 2, "batch_size": 4, "grad_accum": 2, "save_every": 1},
        "precision": "fp32",
    }
    raw.update(overrides)
    return TrainConfig.model_validate(raw)


def test_rating_cuts_count_every_pair_by_reason_over_one_pass(rated, datasets):
    (entry, capped) = cut_config(rated, Path("unused")).mixture
    source = build_mixture([entry], seed=0, eval_fraction=0).sources[0]
    assert source.rows == 5  # the rows as stored: the cuts read them as they are
    counts, turns = Counter(), {}
    for sample, position in source.read(0):  # one row group: the rows in file order
        counts.update(sample.cuts)
        turns[sample.id] = [a for _, a in sample.turns]
        if position == source.rows:
            break
    assert dict(counts) == RATED_COUNTS
    assert {m for answers in turns.values() for a in answers for m in marks(a)} == RATED_KEPT
    assert len(turns) == 4
    # unrated: keep keeps the pairs without a rating (or a grounding score) and counts them.
    keep = entry.model_copy(update={"unrated": "keep"})
    lenient = Counter()
    for sample, position in build_mixture([keep], 0, 0).sources[0].read(0):
        lenient.update(sample.cuts)
        if position == 5:
            break
    assert lenient["pairs_kept"] == 8 and lenient["pairs_kept_unrated"] == 4
    assert "pairs_cut_unrated" not in lenient and lenient["samples_cut"] == 0
    # max_pairs_per_sample: 2 of the 5 pairs, in their order, drawn anew each epoch by the seed.
    picks = []
    for sample, position in build_mixture([capped], 7, 0).sources[0].read(0):
        assert sample.cuts == {"pairs_kept": 2, "pairs_cut_max_pairs": 3}
        picks.append([marks(a, "c")[0] for _, a in sample.turns])
        if position == 6:
            break
    assert all(len(p) == 2 and p == sorted(p) for p in picks) and len(set(map(tuple, picks))) > 1
    again = build_mixture([capped], 7, 0).sources[0].read(0)
    assert [[marks(a, "c")[0] for _, a in next(again)[0].turns] for _ in picks] == picks
    # A dataset with no ratings stored (qa_meta empty, or no such column): every pair unrated.
    plain = MixtureEntry.model_validate(
        {"path": str(datasets["alpha"]), "min_ratings": {"correctness": 4}}
    )
    sample, _ = next(build_mixture([plain], 0, 0).sources[0].read(0))
    assert sample.cuts == {"pairs_kept": 2, "pairs_kept_unrated": 2} and len(sample.turns) == 2


def test_cuts_that_leave_nothing_and_bad_keys_are_config_errors(rated, tmp_path):
    raw = {"path": str(rated["rated"]), **RATED_CUT, "question_types": {"include": ["summary"]}}
    entry = MixtureEntry.model_validate(raw)
    with pytest.raises(ConfigError, match=r"'rated': no training row keeps a pair.*only summary"):
        next(build_mixture([entry], 0, 0).sources[0].read(0))
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: b\nmixture:\n  - path: out/x\n    min_ratings: {correctness: 7}\n"
        "    question_types: {include: [yes-no]}\n    unrated: maybe\nschedule: {max_steps: 1}\n"
    )
    from curation.train.config import load_train_config

    with pytest.raises(ConfigError) as error:
        load_train_config(path)
    said = str(error.value)
    for field in ("min_ratings.correctness", "question_types.include.0", "unrated"):
        assert f"{path}: field 'mixture.0.{field}'" in said, said


def test_cut_pairs_never_reach_a_batch_and_resume_sees_the_same_samples(rated, tmp_path):
    """Two steps on a mixture whose cuts drop a known set of pairs: exactly the kept pairs reach
    the batches, the counts say how many, and a rerun from the step-1 checkpoint (the step-2 one
    lost, as in a kill) retraces step 2 with the same samples and the same counts."""
    import json

    config = cut_config(rated, tmp_path / "run")

    def run_recording() -> tuple[object, list[list[str]]]:
        trainer = Trainer(config, log=lambda _m: None)
        decode = trainer.processor.tokenizer.decode
        steps: list[list[str]] = []
        step = trainer.step

        def recording(micro):
            steps.append([decode(row) for batch in micro for row in batch.inputs["input_ids"]])
            return step(micro)

        trainer.step = recording
        return trainer.run(), steps

    first, steps = run_recording()
    rows = [text for step in steps for text in step]  # one sample a row (no packing)
    seen = [m for text in rows for m in marks(text)]  # each pair's question and answer
    assert set(seen) == RATED_KEPT  # every kept pair reached a batch, and no cut pair did
    data = first.data["rated"]
    assert data["pairs_kept"] == len(seen) / 2  # the counts are of what the batches held
    assert {k for k in data if "cut" in k} == {k for k in RATED_COUNTS if "cut" in k}
    capped = [marks(text, "c") for text in rows if marks(text, "c")]
    assert capped and all(len(pairs) == 4 for pairs in capped)  # 2 pairs of 5, Q and A each
    assert first.data["capped"]["pairs_cut_max_pairs"] == 3 * len(capped)
    state = json.loads((tmp_path / "run/checkpoints/step-000002/trainer_state.json").read_text())
    assert state["data"] == first.data

    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step-000002")
    second, resumed = run_recording()
    assert second.start_step == 1 and resumed == steps[1:]
    assert second.data == first.data
