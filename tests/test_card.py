import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from datasets import Features, load_dataset
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCardData
from output_fixtures import build_output, document_units, outcome
from PIL import Image
from typer.testing import CliRunner

from curation.cli import app
from curation.output.card import size_category, write_card
from curation.output.shards import DatasetWriter
from curation.output.stats import dataset_stats
from curation.schema import SAMPLE_FEATURES


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("card") / "tiny"
    build_output(out)
    write_card(out)
    return out


def card_parts(out: Path) -> tuple[dict, str]:
    _, header, body = (out / "README.md").read_text().split("---\n", 2)
    return yaml.safe_load(header), body


def test_card_header_describes_the_shards_and_the_folder_loads_as_images(dataset, tmp_path):
    header, _ = card_parts(dataset)
    assert header["configs"] == [
        {
            "config_name": "default",
            "data_files": [{"split": "train", "path": "data/train-*.parquet"}],
        }
    ]
    info = DatasetInfosDict.from_dataset_card_data(DatasetCardData(**header))["default"]
    shard = next((dataset / "data").glob("*.parquet"))
    assert info.features == Features.from_arrow_schema(pq.read_schema(shard))
    assert info.splits["train"].num_examples == 3
    assert header["license"] == "other"
    assert header["language"] == ["en"]
    assert header["task_categories"] == ["visual-question-answering", "image-text-to-text"]
    assert header["size_categories"] == ["n<1K"]
    assert "synthetic" in header["tags"]

    # The folder as a whole (rejects/ and errors/ beside data/) loads through the card's config.
    ds = load_dataset(str(dataset), split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.num_rows == 3
    assert all(isinstance(image, Image.Image) for image in ds[0]["images"])
    assert ds[0]["texts"][0]["user"] == "What grew on page 1?"


def test_card_reports_sources_recipe_prompts_funnel_stats_and_examples(dataset):
    _, body = card_parts(dataset)
    for source, doc_id, status in (
        ("docs/report.pdf", "aaaa1111", "ok"),
        ("docs/broken.pdf", "cccc3333", "error"),
    ):
        assert f"| {source} | `{doc_id}` | {status} |" in body
    assert "```yaml\nname: tiny\n" in body
    assert "| docmatix/coverage | 4 |" in body
    assert "| docmatix/summary | 1 |" in body
    assert "Filter chain `docmatix`" in body
    for stage, n in (
        ("documents", 3),
        ("pages", 5),
        ("units", 3),
        ("pairs generated", 6),
        ("pairs kept", 5),
        ("rejected by rule", 1),
        ("unreadable replies (parse)", 1),
        ("errors: corrupt", 1),
    ):
        assert f"| {stage} | {n} |" in body
    assert "| pairs per unit | 1.0 | 1.67 | 2.0 | 2.0 | 2.0 |" in body
    assert "| judge score | 7.0 | 7.4 | 7.0 | 8.0 | 8.0 |" in body
    assert "**`aaaa1111:0-1`** (2 images)" in body
    assert "| What grew on page 1? | The budget grew by 10 percent. |" in body
    assert body.count("(2 images)") + body.count("(1 image)") == 3

    for plot in ("funnel", "pairs_per_unit", "answer_length", "judge_scores", "pages_per_unit"):
        assert f"](report/{plot}.png)" in body
        with Image.open(dataset / "report" / f"{plot}.png") as png:
            assert png.format == "PNG" and png.width > 100
    stats = json.loads((dataset / "report" / "stats.json").read_text())
    assert stats == json.loads(json.dumps(dataset_stats(dataset)))
    assert stats["pairs_per_unit"]["counts"] == {"1": 1, "2": 2}
    assert stats["pages_per_unit"]["counts"] == {"1": 1, "2": 2}
    assert stats["judge_scores"]["counts"] == {"7": 3, "8": 2}
    assert stats["images"] == 5 and stats["pairs"] == 5


def test_card_without_judge_says_so_and_takes_the_recipe_license(tmp_path):
    out = tmp_path / "nojudge"
    build_output(out, judge=False)
    (out / "report").mkdir()
    (out / "report" / "judge_scores.png").write_bytes(b"left from an earlier run")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["recipe"]["license"] = "cc-by-4.0"
    (out / "manifest.json").write_text(json.dumps(manifest))

    write_card(out)
    header, body = card_parts(out)
    assert header["license"] == "cc-by-4.0"
    assert "_No judge scores:" in body
    assert "judge_scores.png" not in body
    assert not (out / "report" / "judge_scores.png").exists()
    assert dataset_stats(out)["judge_scores"] is None
    result = CliRunner().invoke(app, ["stats", str(out)])
    assert result.exit_code == 0, result.output
    assert "judge score │ -" in " ".join(result.output.split())


def test_size_categories_follow_the_hub_buckets():
    assert [size_category(n) for n in (0, 999, 1000, 250_000, 2_000_000_000)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "100K<n<1M",
        "n>1B",
    ]


def test_stats_command_prints_the_funnel(dataset):
    result = CliRunner().invoke(app, ["stats", str(dataset)])
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.replace("│", " ").split()) for line in result.output.splitlines()]
    for row in ("documents 3", "pairs kept 5", "rejected by rule 1", "errors: corrupt 1"):
        assert row in lines
    assert "samples 3 rows in 2 shards" in lines


def test_stats_command_without_manifest_exits_2(tmp_path):
    (tmp_path / "data").mkdir()
    result = CliRunner().invoke(app, ["stats", str(tmp_path)])
    assert result.exit_code == 2
    assert "no manifest.json" in " ".join(result.output.split())


def test_card_of_a_run_that_kept_nothing_still_describes_the_schema(tmp_path):
    writer = DatasetWriter(tmp_path, rows_per_shard=10, inputs=["docs/a.pdf"])
    unit = document_units("dddd4444", "docs/a.pdf", n_pages=1, pages_per_unit=1)[0]
    writer.add(outcome(unit, [("Is [this] bad?", "Yes.", False)]))
    writer.close({"recipe_name": "empty"})

    write_card(tmp_path)
    header, body = card_parts(tmp_path)
    info = DatasetInfosDict.from_dataset_card_data(DatasetCardData(**header))["default"]
    assert info.features == SAMPLE_FEATURES
    assert info.splits["train"].num_examples == 0
    assert "| pairs kept | 0 |" in body and "| rejected by rule | 1 |" in body
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["funnel.png", "stats.json"]
