"""YAML as people read it: shared objects written out in full, never as anchors and aliases."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(document: Any, *, sort_keys: bool = True) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=sort_keys, width=100, allow_unicode=True)


def dump_all(documents: Iterable[Any], *, sort_keys: bool = True) -> str:
    return yaml.dump_all(
        documents, Dumper=_Dumper, sort_keys=sort_keys, width=100, allow_unicode=True
    )
