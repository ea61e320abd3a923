"""Reading configuration text: YAML files (safe loader, duplicate keys refused) and `key.sub=value`
overrides. config.py turns the trees into the typed config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gp_distributed.errors import ConfigError


def set_dotted(tree: dict[str, Any], dotted_key: str, value: Any) -> None:
    node = tree
    *parents, leaf = dotted_key.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError("override", dotted_key, f"'{part}' is not a section")
        node = child
    node[leaf] = value


def flatten_dotted(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"max_steps": 2}} -> {"train.max_steps": 2}: the inverse of `set_dotted`, leaves as they are."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten_dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def parse_override(text: str) -> tuple[str, Any]:
    """`key.sub=value` -> ("key.sub", value), the value typed as YAML would type it."""
    key, sep, raw_value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError("override", text, "expected key.sub=value")
    try:
        return key.strip(), yaml.safe_load(raw_value) if raw_value.strip() else None
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or error
        raise ConfigError("override", key.strip(), f"value {raw_value!r} is not valid YAML: {problem}") from None


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping key given twice (plain YAML keeps the last one silently)."""


def _construct_unique_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[str] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key_node.value!r}",
                                                        key_node.start_mark)
            seen.add(key_node.value)
    return loader.construct_mapping(node, deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(str(path), "", f"cannot read: {error.strerror}") from None
    try:
        tree = yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader: plain data only
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(where, "", f"invalid YAML: {getattr(error, 'problem', error)}") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(str(path), "", "top level must be a mapping of sections")
    return tree
