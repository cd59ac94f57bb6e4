"""What ties a resumed run to the interrupted one: recipe settings, chain bytes, prompt bytes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from curation.config import ConfigError, load_recipe
from curation.output.journal import JOURNAL, Journal
from curation.run import run_identity

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
    doc_ids = {"doc.pdf": "d0c"}.get
    assert Journal(tmp_path, "a" * 64, ["doc.pdf"], doc_ids).progress.restarted is None
    assert Journal(tmp_path, "a" * 64, ["doc.pdf"], doc_ids).progress.restarted is None
    (tmp_path / JOURNAL / "chunk-000000.arrow").write_bytes(b"left over")
    other = Journal(tmp_path, "b" * 64, ["doc.pdf"], doc_ids)
    assert "changed" in other.progress.restarted
    assert not (tmp_path / JOURNAL / "chunk-000000.arrow").exists()

    # A journal written by an older curation (no format in its header: rows without the
    # judge's ratings) is started over too, saying so, even for the same recipe.
    (tmp_path / JOURNAL / "run.json").write_text(json.dumps({"recipe_hash": "b" * 64}))
    (tmp_path / JOURNAL / "chunk-000000.arrow").write_bytes(b"old format")
    older = Journal(tmp_path, "b" * 64, ["doc.pdf"], doc_ids)
    assert "another version of curation" in older.progress.restarted
    assert not (tmp_path / JOURNAL / "chunk-000000.arrow").exists()


def test_a_resumed_journal_drops_the_units_of_changed_and_removed_inputs(tmp_path):
    import pyarrow as pa
    from output_fixtures import document_units, outcome

    from curation.schema import OUTCOME_SCHEMA

    old_a = document_units("aaaa", "a.pdf", 4, 2)  # two units, then a.pdf changes
    b = document_units("bbbb", "b.pdf", 2, 2)
    c = document_units("cccc", "c.pdf", 2, 2)  # then c.pdf leaves the inputs
    first = Journal(tmp_path, "h" * 64, ["a.pdf", "b.pdf", "c.pdf"], {}.get)
    rows = [outcome(unit, [("Q?", "A.", True)]).to_row() for unit in (*old_a, *b, *c)]
    first.append(pa.Table.from_pylist(rows[:3], schema=OUTCOME_SCHEMA))  # a.pdf and b.pdf
    first.append(pa.Table.from_pylist(rows[3:], schema=OUTCOME_SCHEMA))  # c.pdf alone

    now = {"a.pdf": "a2a2", "b.pdf": "bbbb"}
    resumed = Journal(tmp_path, "h" * 64, ["a.pdf", "b.pdf"], now.__getitem__)
    assert resumed.progress.changed == ["a.pdf"]
    assert resumed.progress.removed == ["c.pdf"]
    assert resumed.documents_done() == {"b.pdf"}  # a.pdf is ingested again
    assert resumed.units_done() == set()
    assert [o.unit.unit_id for o in resumed.outcomes()] == [u["unit_id"] for u in b]

    # The old rows are gone from the files: a second resume finds nothing stale, and a new
    # chunk takes a name no old chunk has.
    new_a = document_units("a2a2", "a.pdf", 2, 2)
    resumed.append(pa.Table.from_pylist([outcome(new_a[0], []).to_row()], schema=OUTCOME_SCHEMA))
    again = Journal(tmp_path, "h" * 64, ["a.pdf", "b.pdf"], now.__getitem__)
    assert again.progress.changed == again.progress.removed == []
    assert len(again.chunks) == 3
    assert [o.unit.unit_id for o in again.outcomes()] == [new_a[0]["unit_id"], b[0]["unit_id"]]


def test_a_chain_that_extends_another_runs_both_and_names_both_in_the_identity(tmp_path):
    """`extends:` puts the base chain's filters first; an entry of the same type and name
    replaces the base's in place; editing the base file changes the run's identity."""
    from curation.filters.chain import FilterChain

    base = tmp_path / "base.yaml"
    base.write_text(
        "name: base\nfilters:\n  - type: non_empty\n  - type: judge\n    threshold: 7\n"
        "  - type: answer_echo\n"
    )
    chain = tmp_path / "rated.yaml"
    chain.write_text(
        "name: rated\nextends: base.yaml\nfilters:\n"
        "  - type: judge\n    prompt: judge/axes\n    mode: annotate\n"
        "    engine: {engine: openai, model: m, base_url: 'http://127.0.0.1:9/v1'}\n"
        "  - type: repetition\n"
    )
    loaded = FilterChain.load(chain)
    assert [f.label for f in loaded.filters] == ["non_empty", "judge", "answer_echo", "repetition"]
    assert loaded.filters[1].mode == "annotate" and loaded.inactive == []

    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(f"name: r\ninputs: ['x/*.pdf']\nfilters: {chain}\n")
    recipe = load_recipe(recipe_path)
    first = run_identity(recipe, chain, ROOT / "prompts" / "docmatix")
    base.write_text(base.read_text().replace("answer_echo", "anomalies"))
    assert run_identity(recipe, chain, ROOT / "prompts" / "docmatix") != first

    (tmp_path / "loop.yaml").write_text(
        "name: loop\nextends: loop.yaml\nfilters: [{type: non_empty}]\n"
    )
    with pytest.raises(ConfigError, match="extends itself"):
        FilterChain.load(tmp_path / "loop.yaml")


def test_a_run_interrupted_under_the_old_chain_form_starts_over_saying_why(tmp_path):
    """Moving a chain's dedup from `filters:` to its `dedup:` key changes the chain's bytes: a
    run interrupted before starts over with the reason, never mixing its rows in. The same
    old-form file resumes (its journal holds the filters' decisions only: dedup runs at the
    assembly, in either form)."""
    import pyarrow as pa
    from output_fixtures import document_units, outcome

    from curation.schema import OUTCOME_SCHEMA

    recipe_path, chain, prompts = setup_copy(tmp_path)
    new_form = chain.read_text()
    settings = "dedup:\n  threshold: 0.8\n  num_perm: 128\n  ngram: 5\n"
    assert new_form.endswith(settings)
    old_form = new_form.removesuffix(settings).replace(
        "  - type: judge\n", "  - type: dedup\n    threshold: 0.8\n  - type: judge\n"
    )
    chain.write_text(old_form)
    recipe = load_recipe(recipe_path)

    def journal() -> Journal:
        identity = run_identity(recipe, chain, prompts / "docmatix")
        return Journal(tmp_path / "out", identity, ["a.pdf"], {"a.pdf": "aaaa"}.get)

    units = document_units("aaaa", "a.pdf", 4, 2)
    journal().append(
        pa.Table.from_pylist([outcome(units[0], [("Q?", "A.", True)]).to_row()], OUTCOME_SCHEMA)
    )
    assert journal().resumed  # the same bytes: resumed

    chain.write_text(new_form)
    resumed = journal()
    assert resumed.progress.restarted == (
        "the recipe, its filter chain or its prompts changed since the interrupted run"
    )
    assert not resumed.resumed and list(resumed.outcomes()) == []
