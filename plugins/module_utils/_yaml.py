# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Deterministic YAML: the same objects always give the same bytes, so a second run changes nothing."""

from __future__ import annotations

from typing import Any, Iterable

import yaml

__all__ = ["dump", "dump_all", "load_all", "plain"]


# libyaml's emitter writes the same bytes as PyYAML's (a unit test holds both to that) about ten times faster;
# writing the tree was the largest single cost of a render.
_Base: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_Base):
    """Block style, key order kept, multi-line strings as literal blocks (config files stay readable)."""

    def ignore_aliases(self, data: Any) -> bool:  # an object used twice is written twice, never as &anchor
        return True


def _str(dumper: Any, value: str) -> yaml.Node:
    if "\n" in value and not any(line != line.rstrip() for line in value.splitlines()):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def plain(value: Any) -> Any:
    """A deep copy in builtin types: Ansible hands over its own tagged str/dict/list subclasses."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def dump(data: Any) -> str:
    return yaml.dump(plain(data), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=4096, allow_unicode=True)


def dump_all(documents: Iterable[Any]) -> str:
    return yaml.dump_all(
        [plain(doc) for doc in documents], Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=4096, allow_unicode=True, explicit_start=True
    )


def load_all(text: str) -> list:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]
