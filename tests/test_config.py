from pathlib import Path

import pytest

from curation.config import ConfigError, Recipe, load_recipe

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_shipped_recipes_load():
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        recipe = load_recipe(path)
        assert recipe.inputs and recipe.name


def test_every_recipe_runs_the_default_chain(tmp_path):
    """The product's best chain is the default: a recipe that names no chain runs it, and every
    shipped recipe runs it or a chain extending it (filters/docmatix.yaml is only the faithful
    reproduction of Docmatix's own filtering)."""
    from curation.filters.chain import chain_specs

    assert load_recipe(write(tmp_path, "name: r\ninputs: ['*.pdf']\n")).filters == (
        "filters/default.yaml"
    )
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        chain = ROOT / load_recipe(path).filters
        files = [source for source, _ in chain_specs(chain)]
        assert ROOT / "filters" / "default.yaml" in files, path


def test_defaults_follow_docmatix(tmp_path):
    recipe = load_recipe(write(tmp_path, "name: r\ninputs: ['*.pdf']\n"))
    assert recipe.ingest.dpi == 150
    assert recipe.ingest.max_image_side == 2940
    assert recipe.output_dir() == Path("out/r")


def test_bad_value_names_file_and_field(tmp_path):
    path = write(tmp_path, "name: r\ninputs: ['*.pdf']\ngenerate:\n  max_tokens: -5\n")
    with pytest.raises(ConfigError) as err:
        load_recipe(path)
    assert str(path) in str(err.value)
    assert "generate.max_tokens" in str(err.value)


def test_unknown_key_is_an_error(tmp_path):
    path = write(tmp_path, "name: r\ninputs: ['*.pdf']\nunits:\n  pages_per_window: 3\n")
    with pytest.raises(ConfigError, match=r"units\.pages_per_window"):
        load_recipe(path)


def test_missing_inputs_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="'inputs'"):
        load_recipe(write(tmp_path, "name: r\n"))


def test_overlap_must_be_smaller_than_window(tmp_path):
    path = write(tmp_path, "name: r\ninputs: [a]\nunits: {pages_per_unit: 2, overlap: 2}\n")
    with pytest.raises(ConfigError, match="overlap"):
        load_recipe(path)


def test_invalid_yaml_names_the_file(tmp_path):
    path = write(tmp_path, "name: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_recipe(path)


def test_hash_changes_with_settings():
    a = Recipe(name="r", inputs=["x"])
    b = Recipe(name="r", inputs=["x"], generate={"seed": 1})
    assert a.content_hash() == Recipe(name="r", inputs=["x"]).content_hash()
    assert a.content_hash() != b.content_hash()


def test_hash_ignores_how_a_run_goes():
    a = Recipe(name="r", inputs=["x"], generate={"engine": "openai", "base_url": "http://a/v1"})
    moved = {"engine": "openai", "base_url": ["http://b/v1", "http://c/v1"], "workers": 4}
    assert a.content_hash() == Recipe(name="r", inputs=["x"], generate=moved).content_hash()
