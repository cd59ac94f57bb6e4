import ast
from collections import Counter
from pathlib import Path

import pytest
from conftest import LENIENT_CHAIN, curation_cli, make_pdf, shell_escape, write_prompt

from curation.config import ConfigError, GenerateConfig, UnitsConfig
from curation.generate import QAGenerator
from curation.generate.engines.base import ChatRequest, Engine, EngineResult
from curation.generate.prompts import PromptLibrary, page_excerpts, resolve_prompt_dir
from curation.output.shards import parse_reject_row
from curation.schema import Outcome

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
    folder = tmp_path / "vision"
    folder.mkdir()
    (folder / "chart.j2").write_text(
        "---\nid: vision/chart\nimages: true\n---\n{% block system %}Ask.{% endblock %}\n"
        "{% block user %}About the chart on page {{ pages[0].number }}.{% endblock %}\n"
    )
    with pytest.raises(ConfigError, match="every weighted prompt needs page images"):
        QAGenerator(GenerateConfig(prompt_set=str(folder)), UnitsConfig())
    QAGenerator(GenerateConfig(prompt_set=str(folder), images=True), UnitsConfig())


def blocks(user: str) -> str:
    """A template body: a fixed system block and the given user block."""
    return f"{{% block system %}}Write pairs.{{% endblock %}}\n{{% block user %}}{user}{{% endblock %}}\n"


# Ways out of a plain Jinja2 Environment, each refused by the immutable sandbox (`{marker}`: a
# file the shell command would create).
ESCAPES = {
    "globals_of_a_global": None,  # conftest.shell_escape: cycler.__init__.__globals__.os.popen
    "subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "lipsum_globals": "{{ lipsum.__globals__['os'].popen('touch {marker}').read() }}",
    "mutate_the_context": "{{ pages.append(1) }}",
}


@pytest.mark.parametrize("escape", sorted(ESCAPES))
def test_a_template_cannot_run_code(tmp_path, escape):
    """A shared prompt set is code its author wrote: rendered in the sandbox, its way out fails
    the render with the template's file, line and the sandbox's message, and nothing runs."""
    marker = tmp_path / "ran"
    payload = (ESCAPES[escape] or shell_escape(marker)).replace("{marker}", str(marker))
    path = write_prompt(tmp_path / "shared", "evil", "\n" + blocks(f"Pages: {payload}"))
    library = PromptLibrary(tmp_path / "shared")
    with pytest.raises(ConfigError) as err:
        library.templates[0].render(pages=[], kind="document", n_pairs=1)
    assert str(err.value).startswith(f"{path}, line 6: access to attribute ")
    assert str(err.value).endswith("is unsafe.")
    assert not marker.exists()


def test_a_run_with_a_template_the_sandbox_refuses_exits_2_before_ray(tmp_path):
    """Every prompt the recipe can draw is rendered once on a stand-in unit before Ray starts
    (this test has no e2e mark: conftest's guard fails it if Ray starts)."""
    marker = tmp_path / "ran"
    folder = tmp_path / "shared"
    write_prompt(folder, "plain", blocks("{% for page in pages %}{{ page.text }}{% endfor %}"))
    evil = write_prompt(folder, "evil", blocks(shell_escape(marker)), front="weight: 0.1\n")
    make_pdf(tmp_path / "doc.pdf", ["Some text."])
    (tmp_path / "chain.yaml").write_text(LENIENT_CHAIN)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"name: evil\ninputs: [{tmp_path}/doc.pdf]\nfilters: {tmp_path}/chain.yaml\n"
        f"generate: {{prompt_set: {folder}}}\noutput: {{dir: {tmp_path}/out}}\n"
    )
    result = curation_cli("run", str(recipe))
    said = "".join(result.output.split())  # the terminal wraps long lines
    assert result.exit_code == 2, result.output
    assert f"{evil},line6:accesstoattribute'__init__'" in said and "isunsafe" in said
    assert not marker.exists()


class ScriptedEngine(Engine):
    """Answers every request with the same reply; records the requests."""

    model_name = "scripted"

    def __init__(self, reply: str) -> None:
        self.reply, self.requests = reply, []

    def generate(self, requests: list[ChatRequest]) -> list[EngineResult]:
        self.requests += requests
        return [EngineResult(r.request_id, self.reply, "stop") for r in requests]


def unit(pages: int) -> dict:
    return {
        "unit_id": f"doc:0-{pages - 1}",
        "doc_id": "doc",
        "source": "doc.pdf",
        "kind": "document",
        "doc_pages": pages,
        "doc_units": 1,
        "pages": list(range(pages)),
        "texts": [f"Page {p + 1} says the pump moved {p} litres." for p in range(pages)],
        "images": [],
        "error_code": None,
        "error": None,
    }


def test_a_branch_only_a_real_unit_reaches_is_a_recorded_reject_not_run(tmp_path):
    """The stand-in unit (two pages) passes the up-front render; a three-page unit reaches the
    branch, whose render fails in the sandbox: its outcome says why, no request is sent for it,
    and it is written as a reject row with the reason. Other units go on."""
    marker = tmp_path / "ran"
    folder = tmp_path / "shared"
    path = write_prompt(
        folder,
        "branch",
        blocks("{% if pages | length > 2 %}" + shell_escape(marker) + "{% endif %}Go."),
    )
    engine = ScriptedEngine("Q1: How much did the pump move?\nA1: One litre.\n")
    generator = QAGenerator(
        GenerateConfig(prompt_set=str(folder), cache=False), UnitsConfig(), engine=engine
    )
    branch, plain = generator([unit(3), unit(2)])
    assert not marker.exists()
    assert len(engine.requests) == 1 and plain["pairs"] and plain["parse_errors"] == []
    assert branch["pairs"] == [] and branch["finish_reason"] == "unrendered"
    assert branch["prompt_id"] == "shared/branch"
    (error,) = branch["parse_errors"]
    assert error.startswith(f"prompt not rendered: {path}, line 5: access to attribute")
    reject = parse_reject_row(Outcome.from_row(branch))
    assert reject["unit_id"] == "doc:0-2" and "prompt not rendered" in reject["reason"]


def test_only_prompt_templates_are_rendered():
    """Jinja2 is imported by the prompt library alone (which renders sandboxed): the text
    fields of recipes and chains never go through a template engine."""
    root = Path(__file__).resolve().parents[1]
    importers = set()
    for path in sorted((root / "curation").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(name.split(".")[0] == "jinja2" for name in names):
                importers.add(path.relative_to(root).as_posix())
    assert importers == {"curation/generate/prompts.py"}


def test_answer_first_asks_for_the_question_of_a_page_span(tmp_path):
    """The answer_first set renders the unit's chosen sentence, stops the reply at its line, and
    the pair is the model's question with that sentence as the answer, cited on its page. A unit
    whose pages hold no sentence sends no request and is a reject with the reason."""
    engine = ScriptedEngine("Question: How many litres did the pump move?\nQuestion: And")
    generator = QAGenerator(
        GenerateConfig(prompt_set="answer_first", cache=False), UnitsConfig(), engine=engine
    )
    blank = {**unit(1), "unit_id": "doc:1-1", "texts": ["Item\nSpecification"]}
    written, empty = generator([unit(2), blank])
    (request,) = engine.requests
    (pair,) = written["pairs"]
    assert pair["question"] == "How many litres did the pump move?"
    assert pair["answer"] in unit(2)["texts"] and pair["answer"] in request.messages[-1]["content"]
    assert pair["evidence_pages"] == [unit(2)["texts"].index(pair["answer"]) + 1]
    assert pair["question_type"] == "extractive" and written["prompt_id"] == "answer_first/question"
    assert request.stop == ["\n"] and request.prefill == "Question:"
    assert empty["pairs"] == [] and empty["finish_reason"] == "unrendered"
    assert "no sentence on the pages to ask about" in empty["parse_errors"][0]
