import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from output_fixtures import build_output
from PIL import Image
from typer.testing import CliRunner

from curation.cli import app
from curation.output.export import FORMATS, IMAGE_TOKEN, export_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "tiny"
    build_output(out)
    return out


def samples(out: Path) -> dict[str, dict]:
    """The source of truth: id -> row of the shards (texts and image names, no decoding)."""
    table = pq.read_table(out / "data", columns=["id", "images", "texts"])
    return {
        row["id"]: {"texts": row["texts"], "images": [i["path"] for i in row["images"]]}
        for row in table.to_pylist()
    }


def read_records(fmt: str, dest: Path) -> list[dict]:
    if fmt == "llava":
        return json.loads((dest / "train.json").read_text())
    name = "train.jsonl" if fmt == "mantis" else "tiny.jsonl"
    return [json.loads(line) for line in (dest / name).read_text().splitlines()]


def as_turns(fmt: str, record: dict) -> tuple[list[str], list[tuple[str, str]]]:
    """(image paths, [(user, assistant)]) in any of the three layouts, roles checked."""
    if fmt == "mantis":
        messages = [(m["role"], m["content"]) for m in record["conversation"]]
        roles, images = ("user", "assistant"), record["images"]
    else:
        messages = [(m["from"], m["value"]) for m in record["conversations"]]
        roles, images = ("human", "gpt"), record["image"]
    assert [role for role, _ in messages] == list(roles) * (len(messages) // 2)
    texts = [text for _, text in messages]
    return images, list(zip(texts[::2], texts[1::2], strict=True))


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_follows_the_format_conventions_and_round_trips(dataset, tmp_path, fmt):
    dest = tmp_path / fmt
    result = CliRunner().invoke(app, ["export", str(dataset), "--format", fmt, "--out", str(dest)])
    assert result.exit_code == 0, result.output

    expected = samples(dataset)
    records = read_records(fmt, dest)
    assert [r["id"] for r in records] == list(expected)
    for record in records:
        images, turns = as_turns(fmt, record)
        source = expected[record["id"]]
        assert [Path(p).name for p in images] == source["images"]
        for path in images:
            assert not Path(path).is_absolute()
            with Image.open(dest / path) as image:
                image.verify()
        first = turns[0][0]
        assert first.count(IMAGE_TOKEN) == len(images)
        assert all(IMAGE_TOKEN not in user + answer for user, answer in turns[1:])
        # Without its image lines, the first turn is exactly the shard's first question.
        question = re.sub(r"(Image-\d+: )?<image>\n", "", first)
        assert [(question, turns[0][1]), *turns[1:]] == [
            (t["user"], t["assistant"]) for t in source["texts"]
        ]
    assert len(list((dest / "images").iterdir())) == 5


def test_internvl_numbers_multi_image_tokens_and_writes_its_meta_file(dataset, tmp_path):
    result = export_dataset(dataset, "internvl", tmp_path / "ivl")
    records = {r["id"]: r for r in read_records("internvl", tmp_path / "ivl")}
    two_pages = records["aaaa1111:0-1"]["conversations"][0]["value"]
    assert two_pages == "Image-1: <image>\nImage-2: <image>\nWhat grew on page 1?"
    one_page = records["aaaa1111:2-2"]["conversations"][0]["value"]
    assert one_page == "<image>\nWhat is on the last page?"

    meta = json.loads((tmp_path / "ivl" / "meta.json").read_text())
    assert meta == {
        "tiny": {
            "root": str((tmp_path / "ivl").resolve()),
            "annotation": str((tmp_path / "ivl" / "tiny.jsonl").resolve()),
            "data_augment": False,
            "repeat_time": 1,
            "length": 3,
            "max_dynamic_patch": 6,
        }
    }
    assert result.rows == 3 and result.images == 5


def test_export_refuses_a_folder_without_manifest(tmp_path):
    result = CliRunner().invoke(
        app, ["export", str(tmp_path), "--format", "llava", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2
    assert "no manifest.json" in " ".join(result.output.split())
