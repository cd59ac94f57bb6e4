import ast
from pathlib import Path

import pytest
from conftest import curation_cli

from curation.config import ConfigError, Recipe, load_recipe
from curation.filters.chain import FilterChain
from curation.train.config import load_train_config

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


def alias_bomb(levels: int = 9) -> str:
    """ "Billion laughs" under generate.engine_kwargs (a dict of anything): nine anchors, each
    a list of nine aliases of the one before, 9^9 values once expanded, 700 bytes as written."""
    lines = ["name: r", "inputs: ['*.pdf']", "generate:", "  engine_kwargs:"]
    lines.append("    l0: &l0 [" + ", ".join(["lol"] * 9) + "]")
    for level in range(1, levels):
        lines.append(f"    l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


# Every YAML file a user names goes through the one reader: recipes, chains, train configs.
LOADERS = {"recipe": load_recipe, "chain": FilterChain.load, "train": load_train_config}


@pytest.mark.parametrize("kind", sorted(LOADERS))
def test_an_alias_bomb_is_refused_naming_the_file(tmp_path, kind):
    path = write(tmp_path, alias_bomb())
    with pytest.raises(ConfigError) as err:
        LOADERS[kind](path)
    said = str(err.value)
    assert said.startswith(f"{path}: invalid YAML: aliases expand to more than 10000 values")


def test_anchors_that_expand_a_little_still_load(tmp_path):
    path = write(
        tmp_path,
        "name: r\ninputs: &inputs ['*.pdf']\ngenerate:\n  engine_kwargs:\n"
        "    shared: &shared {top_k: 20, min_p: 0.05}\n    again: *shared\n"
        "    merged: {<<: *shared, top_k: 40}\n    inputs: *inputs\n",
    )
    kwargs = load_recipe(path).generate.engine_kwargs
    assert kwargs["again"] == {"top_k": 20, "min_p": 0.05}
    assert kwargs["merged"] == {"top_k": 40, "min_p": 0.05}


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path):
    path = write(tmp_path, "name: r\ninputs: &loop ['*.pdf', *loop]\n")
    with pytest.raises(ConfigError, match="alias inside its own anchor"):
        load_recipe(path)


# Files that are not text: a PNG (NUL bytes), and Latin-1 text (not UTF-8).
NOT_TEXT = {
    "png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "a NUL byte at offset 8"),
    "latin1": (
        "name: café\ninputs: ['*.pdf']\n".encode("latin-1"),
        "not UTF-8: byte 0xe9 at offset 9",
    ),
}


@pytest.mark.parametrize("kind", sorted(LOADERS))
@pytest.mark.parametrize("content", sorted(NOT_TEXT))
def test_a_file_that_is_not_text_is_refused_naming_the_file(tmp_path, kind, content):
    data, why = NOT_TEXT[content]
    path = tmp_path / "config.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as err:
        LOADERS[kind](path)
    assert str(err.value) == f"{path}: not a text file ({why})"


@pytest.mark.parametrize("content", sorted(NOT_TEXT))
def test_a_binary_recipe_exits_2_naming_the_file(tmp_path, content):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes(NOT_TEXT[content][0])
    result = curation_cli("run", str(recipe))
    said = "".join(result.output.split())  # the terminal wraps long lines
    assert result.exit_code == 2, result.output
    assert "".join(f"{recipe}: not a text file".split()) in said
    assert "Traceback" not in result.output


def test_every_yaml_read_goes_through_the_bounded_loader():
    """PyYAML's own loaders expand aliases without a bound: only yamlfile.parse_yaml calls one
    (with BoundedLoader); everything else reads YAML through it."""
    callers = set()
    for path in sorted((ROOT / "curation").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "yaml"
                and "load" in node.attr
            ):
                callers.add(f"{path.relative_to(ROOT)}: yaml.{node.attr}")
    assert callers == {"curation/yamlfile.py: yaml.load"}


def test_an_engine_override_runs_the_recipe_into_its_own_folder():
    """`curation run --engine vllm`: the same recipe through another engine, beside the first."""
    recipe = Recipe(name="r", inputs=["x"])
    assert recipe.with_engine("local") is recipe  # the recipe's own engine: nothing changes
    vllm = recipe.with_engine("vllm")
    assert vllm.generate.engine == "vllm" and vllm.output_dir() == Path("out/r-vllm")
    assert vllm.content_hash() != recipe.content_hash()
    assert vllm.generate.model_dump(exclude={"engine"}) == recipe.generate.model_dump(
        exclude={"engine"}
    )
    moved = Recipe(name="r", inputs=["x"], output={"dir": "/data/r"}).with_engine("openai")
    assert moved.output_dir() == Path("/data/r-openai")


def test_an_unknown_engine_override_is_refused_before_any_work(tmp_path):
    path = write(tmp_path, "name: r\ninputs: [x]\n")
    result = curation_cli("run", str(path), "--engine", "sglang")
    assert result.exit_code == 2 and "sglang" in result.output
