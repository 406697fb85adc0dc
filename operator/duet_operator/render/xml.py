"""ClickHouse configuration files from nested dicts, through a real XML library.

Keys are sorted so the same model always renders the same bytes (and the same content hash,
so pods roll only when something changed); list values become repeated elements in the
order given; keys starting with `@` are attributes. ElementTree does the escaping.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

XmlTree = Mapping[str, Any]


def to_xml(tree: XmlTree, root: str = "clickhouse") -> str:
    element = ET.Element(root)
    _fill(element, tree)
    ET.indent(element, space="  ")
    return ET.tostring(element, encoding="unicode") + "\n"


def _fill(element: ET.Element, tree: XmlTree) -> None:
    for key in sorted(tree):
        value = tree[key]
        if key.startswith("@"):
            element.set(key[1:], _text(value))
            continue
        for item in value if isinstance(value, list) else [value]:
            child = ET.SubElement(element, key)
            if isinstance(item, Mapping):
                _fill(child, item)
            elif item is not None:
                child.text = _text(item)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def from_env(variable: str) -> dict[str, str]:
    """An element ClickHouse fills from an environment variable at start (secrets, pod identity)."""
    return {"@from_env": variable}
