"""What ties a resumed run to the interrupted one: recipe settings, chain bytes, prompt bytes."""

from __future__ import annotations

import shutil
from pathlib import Path

from curation.config import load_recipe
from curation.output.journal import JOURNAL, Journal
from curation.pipeline import run_identity

ROOT = Path(__file__).resolve().parents[1]


def setup_copy(tmp_path: Path) -> tuple[Path, Path, Path]:
    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts" / "docmatix", prompts / "docmatix")
    shutil.copytree(ROOT / "prompts" / "judge", prompts / "judge")
    chain = tmp_path / "chain.yaml"
    default = (ROOT / "filters" / "default.yaml").read_text()
    assert "  - type: judge\n" in default
    chain.write_text(
        default.replace("  - type: judge\n", f"  - type: judge\n    prompts: {prompts / 'judge'}\n")
    )
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"name: r\ninputs: ['x/*.pdf']\nfilters: {chain}\n")
    return recipe, chain, prompts


def test_identity_follows_chain_and_prompt_bytes_not_runtime_knobs(tmp_path):
    recipe_path, chain, prompts = setup_copy(tmp_path)
    recipe = load_recipe(recipe_path)
    first = run_identity(recipe, chain, prompts / "docmatix")
    assert run_identity(recipe, chain, prompts / "docmatix") == first

    recipe.generate.workers += 1  # how the run goes, not what it makes
    assert run_identity(recipe, chain, prompts / "docmatix") == first

    template = next((prompts / "docmatix").glob("*.j2"))
    template.write_text(template.read_text() + "\nBe brief.\n")
    after_prompt = run_identity(recipe, chain, prompts / "docmatix")
    assert after_prompt != first

    chain.write_text(chain.read_text().replace("threshold: 7", "threshold: 8"))
    after_chain = run_identity(recipe, chain, prompts / "docmatix")
    assert after_chain != after_prompt

    judge = prompts / "judge" / "quality.j2"  # the chain's judge template
    judge.write_text(judge.read_text() + "\nBe strict.\n")
    assert run_identity(recipe, chain, prompts / "docmatix") != after_chain


def test_a_journal_of_another_identity_is_discarded_with_the_reason(tmp_path):
    assert Journal(tmp_path, "a" * 64, ["doc.pdf"]).progress.restarted is None
    assert Journal(tmp_path, "a" * 64, ["doc.pdf"]).progress.restarted is None
    (tmp_path / JOURNAL / "chunk-000000.arrow").write_bytes(b"left over")
    other = Journal(tmp_path, "b" * 64, ["doc.pdf"])
    assert "changed" in other.progress.restarted
    assert not (tmp_path / JOURNAL / "chunk-000000.arrow").exists()
