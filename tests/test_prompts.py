from collections import Counter
from pathlib import Path

import pytest

from curation.config import ConfigError
from curation.generate.prompts import PromptLibrary, page_excerpts, resolve_prompt_dir

ROOT = Path(__file__).resolve().parents[1]
DOCMATIX = ROOT / "prompts" / "docmatix"
ROLES = {"coverage", "complete", "critical", "summary", "general"}


def test_docmatix_set_has_the_five_roles():
    library = PromptLibrary(DOCMATIX)
    assert {t.id.split("/")[1] for t in library.templates} == ROLES


def test_render_gives_system_role_and_pages():
    library = PromptLibrary(DOCMATIX)
    pages = page_excerpts([0, 1], ["Alpha text about pumps.", "Beta text about pipes."], 1000)
    rendered = {t.id: t.render(pages=pages, kind="document", n_pairs=3) for t in library.templates}
    systems = {messages[0]["content"] for messages in rendered.values()}
    assert len(systems) == 5  # one shared system prompt, a different role in each
    for messages in rendered.values():
        system, user = messages
        assert system["role"] == "system" and "Q1:" in system["content"]
        assert "Write 3 pairs" in system["content"]
        assert "--- Page 1 ---\nAlpha text about pumps." in user["content"]
        assert "--- Page 2 ---\nBeta text about pipes." in user["content"]


def test_choice_is_deterministic_and_uses_every_role():
    library = PromptLibrary(DOCMATIX)
    picks = [library.choose(0, f"doc:{i}-{i}").id for i in range(200)]
    assert picks == [library.choose(0, f"doc:{i}-{i}").id for i in range(200)]
    counts = Counter(picks)
    assert len(counts) == 5 and min(counts.values()) > 20
    assert picks != [library.choose(1, f"doc:{i}-{i}").id for i in range(200)]


def test_weights_from_the_recipe_override():
    weights = {f"docmatix/{role}": 0.0 for role in ROLES - {"critical"}}
    library = PromptLibrary(DOCMATIX, weights)
    assert {library.choose(0, f"u{i}").id for i in range(50)} == {"docmatix/critical"}


def test_unknown_weight_id_is_an_error():
    with pytest.raises(ConfigError, match="unknown prompt ids"):
        PromptLibrary(DOCMATIX, {"docmatix/nope": 1})


def test_bad_front_matter_names_the_file(tmp_path):
    (tmp_path / "x.j2").write_text("---\nid: x\nweight: -1\n---\n{% block system %}s{% endblock %}")
    with pytest.raises(ConfigError, match=r"x\.j2: field 'weight'"):
        PromptLibrary(tmp_path)


def test_page_excerpts_share_the_budget():
    excerpts = page_excerpts([4, 5], ["a" * 100, "b" * 100], 60)
    assert [e["number"] for e in excerpts] == [5, 6]
    assert [len(e["text"]) for e in excerpts] == [30, 30]


def test_prompt_set_by_name_or_path(tmp_path):
    assert resolve_prompt_dir("docmatix", ROOT / "prompts") == DOCMATIX
    assert resolve_prompt_dir(str(DOCMATIX)) == DOCMATIX
    with pytest.raises(ConfigError):
        resolve_prompt_dir("missing", tmp_path)


def test_a_set_of_image_prompts_only_is_refused_without_images(tmp_path):
    from curation.config import GenerateConfig, UnitsConfig
    from curation.generate import QAGenerator

    folder = tmp_path / "vision"
    folder.mkdir()
    (folder / "chart.j2").write_text(
        "---\nid: vision/chart\nimages: true\n---\nAsk about the chart on page {{ pages[0].number }}.\n"
    )
    with pytest.raises(ConfigError, match="every weighted prompt needs page images"):
        QAGenerator(GenerateConfig(prompt_set=str(folder)), UnitsConfig())
    QAGenerator(GenerateConfig(prompt_set=str(folder), images=True), UnitsConfig())
