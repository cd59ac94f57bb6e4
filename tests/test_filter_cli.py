"""`curation filter` on the three input layouts, built in temporary folders from the planted set."""

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset, Features, Image, List, Value
from PIL import Image as PILImage
from test_filters import PAGE_TEXT, PLANTED
from typer.testing import CliRunner

from curation.cli import app
from curation.outdir import MARKER
from curation.schema import SAMPLE_FEATURES

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHAIN = str(ROOT / "filters" / "default.yaml")
DOCMATIX_FEATURES = Features(
    {
        "images": List(Image()),
        "texts": List(
            {"user": Value("string"), "assistant": Value("string"), "source": Value("string")}
        ),
    }
)


def png() -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 10), "white").save(buffer, format="PNG")
    return buffer.getvalue()


def units() -> dict[str, list[tuple[str, str]]]:
    grouped: dict[str, list[tuple[str, str]]] = {}
    for unit, question, answer, _ in PLANTED:
        grouped.setdefault(unit, []).append((question, answer))
    return grouped


def shard_rows() -> list[dict]:
    rows = []
    for unit, qas in units().items():
        rows.append(
            {
                "id": unit,
                "doc_id": unit.split(":")[0],
                "pages": [0, 1],
                "images": [{"bytes": png(), "path": f"{unit}-{p}.png"} for p in (0, 1)],
                "texts": [{"user": q, "assistant": a, "source": "report.pdf"} for q, a in qas],
                "page_meta": [
                    {"page": p, "text_source": "layer", "ocr_score": None} for p in (0, 1)
                ],
                "qa_meta": [
                    {
                        "qa_id": f"qa-{unit}-{i}",
                        "prompt_id": "docmatix/coverage",
                        "model": "m",
                        "rationale": None,
                        "evidence_pages": [1],
                        "scores": [],
                    }
                    for i in range(len(qas))
                ],
            }
        )
    return rows


def write_shards(folder: Path) -> Path:
    (folder / "data").mkdir(parents=True)
    dataset = Dataset.from_list(shard_rows(), features=SAMPLE_FEATURES)
    dataset.to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    return folder


def docmatix_dataset() -> Dataset:
    rows = [{"images": r["images"], "texts": r["texts"]} for r in shard_rows()]
    return Dataset.from_list(rows, features=DOCMATIX_FEATURES)


def flat_rows() -> list[dict]:
    return [
        {
            "id": f"q{i:02d}",
            "unit_id": unit,
            "question": question,
            "answer": answer,
            "context": [PAGE_TEXT[:200], PAGE_TEXT[200:]],
        }
        for i, (unit, question, answer, _) in enumerate(PLANTED)
    ]


def build_input(layout: str, tmp: Path) -> Path:
    if layout == "shards":
        return write_shards(tmp / "shards")
    if layout == "docmatix_parquet":
        path = tmp / "docmatix.parquet"
        docmatix_dataset().to_parquet(str(path))
        return path
    if layout == "hf_folder":
        path = tmp / "hf"
        docmatix_dataset().save_to_disk(str(path))
        return path
    if layout == "flat_jsonl":
        path = tmp / "pairs.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in flat_rows()))
        return path
    path = tmp / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist(flat_rows()), path)
    return path


def run_filter(*args: str):
    return CliRunner().invoke(app, ["filter", *args])


def says(result, message: str) -> bool:
    """Whether the command printed the message (rich wraps long lines at any width)."""
    return "".join(message.split()) in "".join(result.output.split())


def read_folder(folder: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(f) for f in sorted(folder.glob("*.parquet"))])


@pytest.mark.parametrize(
    "layout", ["shards", "docmatix_parquet", "hf_folder", "flat_jsonl", "flat_parquet"]
)
def test_filter_command_on_each_layout(tmp_path, layout):
    source = build_input(layout, tmp_path)
    out = tmp_path / "out"
    result = run_filter(str(source), "--chain", DEFAULT_CHAIN, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "rule_patterns" in result.output and "judge (inactive" in result.output

    # Page text travels only in the flat layout; without it grounding has nothing to check.
    has_text = layout.startswith("flat")
    expected = {
        (q, a): (None if f == "grounding" and not has_text else f) for _, q, a, f in PLANTED
    }
    rejects = read_folder(out / "rejects").to_pylist()
    assert {(r["question"], r["answer"]): r["filter"] for r in rejects} == {
        qa: f for qa, f in expected.items() if f
    }
    assert all(r["reason"] for r in rejects)
    assert len(rejects) == sum(1 for f in expected.values() if f)

    kept_table = read_folder(out / "data")
    if has_text:
        kept = {(r["question"], r["answer"]) for r in kept_table.to_pylist()}
    else:
        kept = {(t["user"], t["assistant"]) for r in kept_table.to_pylist() for t in r["texts"]}
        # The unit whose two pairs were both duplicates is gone; the other keeps its good pairs.
        assert kept_table.num_rows == 1
    assert kept == {qa for qa, f in expected.items() if f is None}
    original = build_input_schema(source)
    assert kept_table.schema.names == original.names
    assert kept_table.schema.types == original.types

    funnel = json.loads((out / "funnel.json").read_text())
    assert funnel["pairs_in"] == len(PLANTED)
    assert funnel["pairs_kept"] == len(kept)
    assert funnel["pairs_rejected"] == len(rejects)
    assert funnel["inactive"] == ["judge"]
    by_filter = {row["filter"]: row["rejected"] for row in funnel["filters"]}
    for name in {r["filter"] for r in rejects}:
        assert by_filter[name] == sum(1 for r in rejects if r["filter"] == name)


def build_input_schema(source: Path) -> pa.Schema:
    if source.is_dir() and (source / "state.json").exists():
        return Dataset.load_from_disk(str(source)).data.schema
    if source.suffix == ".jsonl":
        return pa.json.read_json(source).schema
    files = sorted(source.rglob("*.parquet")) if source.is_dir() else [source]
    return pq.read_schema(files[0])


def test_kept_shards_stay_loadable_and_aligned(tmp_path):
    source = write_shards(tmp_path / "shards")
    out = tmp_path / "out"
    assert run_filter(str(source), "--chain", DEFAULT_CHAIN, "--out", str(out)).exit_code == 0
    (shard,) = sorted((out / "data").glob("*.parquet"))
    assert shard.name == "train-00000-of-00001.parquet"
    (row,) = Dataset.from_parquet(str(shard), cache_dir=str(tmp_path / "cache"))
    assert row["images"][0].size == (8, 10)
    # qa_meta keeps the entries of the kept pairs only, in the same order as texts.
    unit_pairs = [(q, a) for unit, q, a, _ in PLANTED if unit == row["id"]]
    planted_index = {qa: i for i, qa in enumerate(unit_pairs)}
    indices = [planted_index[(t["user"], t["assistant"])] for t in row["texts"]]
    assert [m["qa_id"] for m in row["qa_meta"]] == [f"qa-{row['id']}-{i}" for i in indices]
    rejects = read_folder(out / "rejects").to_pylist()
    assert {r["qa_id"] for r in rejects} >= {"qa-copy:0-1-0", "qa-copy:0-1-1"}
    assert next(r for r in rejects if r["qa_id"] == "qa-copy:0-1-0")["reason"].startswith(
        "exact duplicate of report:0-1#0"
    )


def test_filter_errors_name_the_file_and_column(tmp_path):
    out = str(tmp_path / "out")
    missing = run_filter(str(tmp_path / "nope.parquet"), "--chain", DEFAULT_CHAIN, "--out", out)
    assert missing.exit_code == 2 and says(missing, "nope.parquet: no such file")

    no_answer = tmp_path / "qs.jsonl"
    no_answer.write_text('{"question": "Who?", "context": "x"}\n')
    result = run_filter(str(no_answer), "--chain", DEFAULT_CHAIN, "--out", out)
    assert result.exit_code == 2 and says(result, "qs.jsonl: missing column 'answer'")

    unknown = tmp_path / "other.parquet"
    pq.write_table(pa.table({"prompt": ["a"], "completion": ["b"]}), unknown)
    result = run_filter(str(unknown), "--chain", DEFAULT_CHAIN, "--out", out)
    assert result.exit_code == 2 and says(result, "other.parquet: unknown layout")

    bad_texts = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"texts": [["just a string"]]}), bad_texts)
    result = run_filter(str(bad_texts), "--chain", DEFAULT_CHAIN, "--out", out)
    assert result.exit_code == 2 and says(result, "bad.parquet: column 'texts'")

    bad_chain = tmp_path / "chain.yaml"
    bad_chain.write_text("name: c\nfilters:\n  - type: nope\n")
    result = run_filter(str(no_answer), "--chain", str(bad_chain), "--out", out)
    assert result.exit_code == 2 and says(result, "'nope' is not one of")


def test_rows_that_repeat_an_id_stay_separate_units():
    from curation.refilter_input import CONVERSATIONS, RowUnits

    rows = RowUnits(CONVERSATIONS)
    same = {"id": "doc:0", "texts": [{"user": "What grew?", "assistant": "Ridership."}]}
    first = rows.pairs({**same, "page_texts": ["Ridership grew in 2025."]})
    second = rows.pairs({**same, "page_texts": ["The fleet was renewed."]})
    assert first[0].unit.unit_id == "doc:0"
    assert second[0].unit.unit_id != first[0].unit.unit_id
    assert (first[0].unit.texts, second[0].unit.texts) == (
        ["Ridership grew in 2025."],
        ["The fleet was renewed."],
    )


@pytest.mark.e2e
@pytest.mark.parametrize("layout", ["shards", "hf_folder", "flat_jsonl"])
def test_dedup_in_ray_writes_what_the_in_memory_index_writes(tmp_path, layout, ray_local):
    """A dedup whose backend resolves to Ray (`auto` above `ray_above_pairs` input rows) runs in
    two passes with a real local Ray; the kept rows, rejects and funnel match one pass with the
    in-memory index."""
    source = build_input(layout, tmp_path)
    text = Path(DEFAULT_CHAIN).read_text()
    assert "\ndedup:\n" in text
    chains = {}
    for name, settings in {"memory": "backend: memory", "ray": "ray_above_pairs: 1"}.items():
        chains[name] = tmp_path / f"{name}.yaml"
        chains[name].write_text(text.replace("\ndedup:\n", f"\ndedup:\n  {settings}\n"))
    outs = {name: tmp_path / f"out-{name}" for name in chains}
    for name, chain in chains.items():
        result = run_filter(str(source), "--chain", str(chain), "--out", str(outs[name]))
        assert result.exit_code == 0, result.output

    for folder in ("data", "rejects"):
        assert read_folder(outs["ray"] / folder) == read_folder(outs["memory"] / folder), folder
    rejects = read_folder(outs["ray"] / "rejects").to_pylist()
    assert any(r["filter"] == "dedup" for r in rejects)
    funnels = [json.loads((outs[n] / "funnel.json").read_text()) for n in ("memory", "ray")]
    for funnel in funnels:
        funnel.pop("chain_file")
    assert funnels[0] == funnels[1]  # the counts, and the files with their checksums
    # Staging (decisions, pairs for Ray) and the lock removed; the ownership marker stays.
    assert [p.name for p in outs["ray"].glob(".*")] == [MARKER]


def test_progress_counts_rows_up_to_the_input_size(tmp_path):
    from curation.refilter import filter_dataset

    source = build_input("flat_parquet", tmp_path)
    calls: list[tuple[str, int, int]] = []
    filter_dataset(
        source,
        DEFAULT_CHAIN,
        tmp_path / "out",
        batch_size=4,
        on_progress=lambda *a: calls.append(a),
    )
    assert calls[-1] == ("filtering", len(PLANTED), len(PLANTED))  # one row per pair here
    done = [c[1] for c in calls]
    assert done == sorted(done) and len(calls) > 2
