"""Reading the files a user names as configuration (recipes, filter chains, train configs,
prompt templates): text only (`read_text`: no binary file read as YAML), YAML with its aliases
bounded (`BoundedLoader`, `parse_yaml`, `read_yaml`), and `ConfigError`, which every reader of
configuration raises with the file's name. The models those files are validated into are
`curation.config`'s (and, for chains and train configs, their own packages').
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the field."""


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a bound on what aliases expand to.

    `safe_load` builds plain objects only, yet it keeps aliases: nine anchors each holding nine
    aliases of the one before ("billion laughs") is a file of a few hundred bytes that becomes
    9^9 values as soon as anything walks it (the recipe's hash, its copy in the manifest), and
    the process runs out of memory. Refusing every alias would be simpler, but anchors are how
    YAML writes a value once (a list of patterns, an engine block two entries share), and a
    file with a few is not hostile. So while the document is composed, before any object is
    built, each alias counts the values it stands for (its anchor's subtree, with the aliases
    inside expanded too), and the file is refused past MAX_ALIAS_VALUES: far more than a config
    writes out by hand, far less than a walk of the document notices. An alias inside its own
    anchor (a structure that contains itself: no walk of it ends) is refused as well.
    """

    MAX_ALIAS_VALUES = 10_000

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.values = 0  # values composed so far, each alias counted as what it stands for
        self.alias_values = 0  # of which aliases stand for
        self.sizes: dict[int, int] = {}  # id of a composed node: its values, aliases expanded

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        if not self.check_event(yaml.AliasEvent):
            before = self.values
            node = super().compose_node(parent, index)  # its children come through here
            self.values += 1
            self.sizes[id(node)] = self.values - before
            return node
        event = self.peek_event()
        node = super().compose_node(parent, index)  # an unknown anchor is an error there
        where = f"*{event.anchor}, line {event.start_mark.line + 1}"
        size = self.sizes.get(id(node))
        if size is None:  # its anchor is not composed yet: the alias is inside it
            raise yaml.YAMLError(f"alias inside its own anchor ({where})")
        self.values += size
        self.alias_values += size
        if self.alias_values > self.MAX_ALIAS_VALUES:
            raise yaml.YAMLError(
                f"aliases expand to more than {self.MAX_ALIAS_VALUES} values ({where}); "
                "write the values out or use fewer aliases"
            )
        return node


def parse_yaml(text: str, source: Path | str) -> Any:
    """Parse YAML text (the whole of a config file, or a template's front matter) with the
    alias bound (`BoundedLoader`); errors become ConfigError naming `source`."""
    try:
        return yaml.load(text, Loader=BoundedLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from exc


def read_text(path: Path | str) -> str:
    """The text of a file a user names (a config file, a prompt template): UTF-8 with no NUL
    bytes, or a ConfigError naming the file (a binary file given by mistake, or on purpose)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if b"\0" in data:
        raise ConfigError(f"{path}: not a text file (a NUL byte at offset {data.index(0)})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a text file (not UTF-8: byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start})"
        ) from exc


def read_yaml(path: Path | str) -> Any:
    """Parse a YAML file (a recipe, a chain, a train config): every YAML file curation reads
    comes through here, so every one is text (`read_text`) with bounded aliases (`parse_yaml`)."""
    return parse_yaml(read_text(path), path)
