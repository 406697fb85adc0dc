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


def drift_of(desired: Manifest, stored: Manifest | None, applied: str | None) -> list[str] | None:
    """What someone else changed in an object the operator is about to apply again, one line
    per difference, or None. `applied` is the stamp the operator itself last applied to it
    (None: not applied by this process yet): the object must still carry that stamp, so that
    a change of the operator's own (a new design, a new version's rendering) is never taken
    for someone else's. Only `spec` is compared: it holds no secret (a Secret has none, and
    workloads name their Secrets rather than quote them)."""
    if applied is None:
        return None
    if stored is None:
        return ["deleted"]
    if stored["metadata"].get("annotations", {}).get(STAMP) != applied:
        return None
    found = [
        f"{path}: {have!r}, where Duet sets {want!r}"
        for path, want, have in _differences(desired.get("spec"), stored.get("spec"), "spec")
    ]
    return found[:MAX_DIFFERENCES] or None


# A Remediation's evidence is bounded; the first few say what happened.
MAX_DIFFERENCES = 5


def _differences(want: Any, have: Any, path: str) -> list[tuple[str, Any, Any]]:
    if isinstance(want, dict) and isinstance(have, dict):
        return [
            d
            for key, value in want.items()
            for d in _differences(value, have.get(key), f"{path}.{key}")
        ]
    if isinstance(want, list | dict) or isinstance(have, list):
        return [] if _holds(have, want) else [(path, "(as rendered)", "(changed)")]
    return [] if have == want else [(path, want, have)]
