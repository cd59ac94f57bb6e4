"""`make gpu-check`'s plumbing: benchmarks/gpu_check.py --cpu-smoke in a subprocess where pydantic,
datasets, pymupdf and ray cannot be imported (the device machine has none of them), every part
(training, local-engine generation, the local engine as a VLM) with tiny configs on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
BLOCKED = ("pydantic", "datasets", "pymupdf", "fitz", "ray")

# None in sys.modules makes `import name` fail as if the package were not installed; the check
# then runs the script as `python3 benchmarks/gpu_check.py` would.
RUNNER = """
import runpy, sys
for name in {blocked!r}:
    sys.modules[name] = None
sys.argv = [{script!r}, "--cpu-smoke", "--out", {out!r}]
try:
    runpy.run_path({script!r}, run_name="__main__")
finally:
    leaked = sorted(
        m for m in sys.modules
        if m.split(".")[0] in {blocked!r} and sys.modules[m] is not None
    )
    assert not leaked, leaked
"""


def positive(row: dict, *keys: str) -> None:
    for key in keys:
        assert isinstance(row[key], int | float) and row[key] > 0, (key, row)


@pytest.mark.e2e
def test_cpu_smoke_runs_every_part_without_pydantic_datasets_pymupdf_or_ray(tmp_path) -> None:
    out = tmp_path / "gpu-check"
    code = RUNNER.format(blocked=BLOCKED, script=str(SCRIPT), out=str(out))
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    print(f"gpu_check --cpu-smoke: {seconds:.0f} s")

    parts = {key: json.loads((out / f"part_{key}.json").read_text()) for key in "abc"}
    for key, part in parts.items():
        assert part["part"] == key
        assert part["errors"] == []
        assert part["env"]["mode"] == "cpu-smoke"
        assert part["env"]["config_stand_ins"] is True  # pydantic was blocked
        assert part["project_code"]
        assert part["results"]

    a = parts["a"]
    assert "6 x N_text x s" in a["formula"]
    assert a["peaks"]["measured_tflops"] > 0
    assert a["peaks"]["nominal_tflops"] is None  # no GPU: no nominal peak
    assert {(r["preset"], r["packing"]) for r in a["results"]} == {("tiny", "off"), ("tiny", "on")}
    for row in a["results"]:
        positive(row, "tokens_per_s", "samples_per_s", "tflops", "mfu_measured", "parameters")
        positive(row, "tokens", "image_tokens", "steps")
        assert 0 <= row["padding"] < 1
    packed = next(r for r in a["results"] if r["packing"] == "on")
    assert packed["padding"] == 0 and packed["rows_per_step"] == 1
    positive(packed, "speedup_vs_off")

    assert [r["batch"] for r in parts["b"]["results"]] == [1, 2]
    assert [r["batch"] for r in parts["c"]["results"]] == [2]
    for key in "bc":
        for row in parts[key]["results"]:
            positive(row, "tokens_per_s", "decode_tokens_per_s", "prefill_tokens_per_s")
            positive(row, "prompt_tokens_mean", "parameters")
            # min_new_tokens = max_new_tokens: every reply is the full length.
            assert row["completion_tokens_min"] == row["new_tokens"] == 8
            assert row["errors"] == 0
    for row in parts["c"]["results"]:
        positive(row, "image_tokens_per_request", "tiles_per_request")
        assert row["pages_per_request"] == 2

    table = (out / "gpu_check.md").read_text()
    assert "cpu-smoke" in table
    assert "| model | params | packing | tokens/s |" in table
    assert "| tiny | 6M | on |" in table
    assert table.count("| tiny (") == 3  # two text batches, one VLM batch
    assert "Errors:" not in table
