"""Which rendered objects need applying: those missing or differing from what is stored.

Server-side apply of an unchanged object writes nothing, but it still costs the API server
a merge of managed fields per object; with every platform resynced, that is most of the
operator's load. Each object is stamped with a hash of its desired state, and an object is
skipped when the stored one already holds every field we set, the stamp included, so a
hand edit of one of our fields, or a renderer that stops setting one, is applied again.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from duet_operator.models import GROUP
from duet_operator.render.objects import content_hash

Manifest = dict[str, Any]
STAMP = f"{GROUP}/applied-hash"


def stamp(manifest: Manifest) -> Manifest:
    """The manifest with the hash of its desired state in an annotation."""
    stamped = copy.deepcopy(manifest)
    stamped["metadata"].setdefault("annotations", {})[STAMP] = content_hash(manifest)
    return stamped


def unchanged(desired: Manifest, stored: Manifest | None) -> bool:
    """True when `stored` already holds every field of `desired` (server-side defaults and
    fields of other managers aside)."""
    if stored is None:
        return False
    if desired["kind"] == "Secret" and "stringData" in desired:
        # The API server keeps stringData as base64 `data`.
        desired = {k: v for k, v in desired.items() if k != "stringData"} | {
            "data": {
                k: base64.b64encode(v.encode()).decode() for k, v in desired["stringData"].items()
            }
        }
    return _holds(stored, desired)


def _holds(stored: Any, wanted: Any) -> bool:
    if isinstance(wanted, dict):
        return isinstance(stored, dict) and all(
            key in stored and _holds(stored[key], value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(stored, list)
            and len(stored) == len(wanted)
            and all(_holds(s, w) for s, w in zip(stored, wanted, strict=True))
        )
    return bool(stored == wanted)
