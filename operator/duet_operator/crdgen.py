"""Generate the CustomResourceDefinitions in crds/ from the pydantic models.

    python -m duet_operator.crdgen [DIR]          write DIR/*.yaml (default: crds)
    python -m duet_operator.crdgen --check [DIR]  exit 1 when DIR differs from the models

pydantic emits JSON Schema (2020-12); the API server wants a structural OpenAPI v3 schema.
The translation: references inlined, `X | None` turned into an optional X, numeric
`exclusiveMinimum` into the boolean form, titles dropped, and CEL rules (declared on the
models with `validated_by`) carried over as `x-kubernetes-validations`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from duet_operator import yamlio
from duet_operator.models import DataPlatform, DataPlatformBackup, QueryAgent, Remediation
from duet_operator.models.common import GROUP, VERSION

JsonSchema = dict[str, Any]

# Keys of JSON Schema that a structural OpenAPI v3 schema has no use for or forbids.
_DROPPED = {"title", "$defs", "examples"}


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    priority: int = 0
    description: str = ""

    def wire(self) -> dict[str, Any]:
        column: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.priority:
            column["priority"] = self.priority
        if self.description:
            column["description"] = self.description
        return column


@dataclass(frozen=True)
class Kind:
    model: type[BaseModel]
    plural: str
    short_names: tuple[str, ...]
    columns: tuple[PrinterColumn, ...]
    categories: tuple[str, ...] = field(default=("duet",))

    @property
    def kind(self) -> str:
        return self.model.__name__

    @property
    def name(self) -> str:
        return f"{self.plural}.{GROUP}"


def _condition(type_: str) -> str:
    return f'.status.conditions[?(@.type=="{type_}")].status'


AGE = PrinterColumn("Age", ".metadata.creationTimestamp", "date")

KINDS = (
    Kind(
        DataPlatform,
        plural="dataplatforms",
        short_names=("dp",),
        columns=(
            PrinterColumn("Phase", ".status.phase"),
            PrinterColumn("Shards", ".status.design.clickhouse.shards", "integer"),
            PrinterColumn("Replicas", ".status.design.clickhouse.replicas", "integer"),
            PrinterColumn("Ready", _condition("Ready")),
            PrinterColumn(
                "Cost",
                ".status.design.estimatedMonthlyCostUSD",
                "number",
                priority=1,
                description="Estimated monthly cost in USD",
            ),
            PrinterColumn("Planner", ".status.design.planner.provider", priority=1),
            AGE,
        ),
    ),
    Kind(
        QueryAgent,
        plural="queryagents",
        short_names=("qa",),
        columns=(
            PrinterColumn("Phase", ".status.phase"),
            PrinterColumn("Platform", ".spec.platformRef.name"),
            PrinterColumn("Engine", ".spec.engine"),
            PrinterColumn("Ready", _condition("Ready")),
            PrinterColumn("Endpoint", ".status.endpoint", priority=1),
            AGE,
        ),
    ),
    Kind(
        Remediation,
        plural="remediations",
        short_names=("rem",),
        columns=(
            PrinterColumn("Platform", ".spec.platformRef.name"),
            PrinterColumn("Symptom", ".spec.symptom.type"),
            PrinterColumn("Action", ".spec.action.type"),
            PrinterColumn("Phase", ".status.phase"),
            PrinterColumn("Mode", ".spec.mode", priority=1),
            AGE,
        ),
    ),
    Kind(
        DataPlatformBackup,
        plural="dataplatformbackups",
        short_names=("dpbackup",),
        columns=(
            PrinterColumn("Platform", ".spec.platformRef.name"),
            PrinterColumn("Phase", ".status.phase"),
            PrinterColumn("Size", ".status.sizeBytes", "integer", description="Bytes"),
            PrinterColumn("Duration", ".status.durationSeconds", "number", description="Seconds"),
            PrinterColumn("Location", ".status.location", priority=1),
            AGE,
        ),
    ),
)


def structural(schema: JsonSchema, defs: dict[str, JsonSchema]) -> JsonSchema:
    """Turn one pydantic JSON Schema node into a structural OpenAPI v3 node."""
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        # Keys beside a $ref (a field's description, default) win over the target's.
        merged = target | {k: v for k, v in schema.items() if k != "$ref"}
        return structural(merged, defs)

    if "anyOf" in schema and not schema.get("x-kubernetes-int-or-string"):
        branches = [b for b in schema["anyOf"] if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"cannot express a union of {len(branches)} types: {schema}")
        # `X | None = None` is an optional X: absent, not null, on the wire.
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        return structural(branches[0], defs) | structural(rest, defs)

    out: JsonSchema = {}
    for key, value in schema.items():
        if key not in _DROPPED:
            out |= _translate(key, value, defs)
    if schema.get("format") == "date-time":
        out["type"] = "string"
    return out


def _translate(key: str, value: Any, defs: dict[str, JsonSchema]) -> JsonSchema:
    """One keyword of JSON Schema as OpenAPI v3 has it (possibly none, possibly two)."""
    if key == "properties":
        return {key: {name: structural(sub, defs) for name, sub in value.items()}}
    if key == "items":
        return {key: structural(value, defs)}
    if key == "additionalProperties":
        # A map (dict[str, X]) keeps its value schema. A closed model's `false` goes: the API
        # server prunes unknown fields of structural schemas, and forbids the keyword there.
        return {key: structural(value, defs)} if isinstance(value, dict) else {}
    if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
        bound = "minimum" if key == "exclusiveMinimum" else "maximum"
        return {bound: value, key: True}
    if key == "const":
        return {"enum": [value]}
    if key == "default":
        return {} if value is None else {key: _without_nulls(value)}
    if key == "description":
        # Docstrings wrap at the source's width; kubectl explain wraps at the terminal's.
        return {key: " ".join(value.split())}
    return {key: value}


def _without_nulls(value: Any) -> Any:
    """A model default serialises its unset optional fields as null; on the wire they are absent."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def openapi_schema(model: type[BaseModel]) -> JsonSchema:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema = structural(raw, raw.get("$defs", {}))
    properties = schema["properties"]
    # apiVersion, kind and metadata belong to the API server; it validates them itself.
    for key in ("apiVersion", "kind"):
        properties[key] = {"type": "string"}
    properties["metadata"] = {"type": "object"}
    schema.pop("required", None)
    schema["required"] = ["spec"]
    schema.pop("default", None)
    return schema


def build_crd(kind: Kind) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.name, "labels": {"app.kubernetes.io/part-of": "duet"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": list(kind.short_names),
                "categories": list(kind.categories),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [c.wire() for c in kind.columns],
                    "schema": {"openAPIV3Schema": openapi_schema(kind.model)},
                }
            ],
        },
    }


HEADER = "# Generated by `make crds` from operator/duet_operator/models/. Do not edit.\n"


def render(kind: Kind) -> str:
    return HEADER + yamlio.dump(build_crd(kind))


def files() -> dict[str, str]:
    return {f"{GROUP}_{kind.plural}.yaml": render(kind) for kind in KINDS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", nargs="?", default="crds", type=Path)
    parser.add_argument("--check", action="store_true", help="fail when DIR is stale")
    args = parser.parse_args(argv)
    wanted = files()
    if args.check:
        present = {p.name: p.read_text() for p in args.dir.glob("*.yaml")}
        stale = sorted(n for n in wanted.keys() | present.keys() if wanted.get(n) != present.get(n))
        if stale:
            print(f"{args.dir}/ is stale ({', '.join(stale)}): run `make crds`", file=sys.stderr)
            return 1
        return 0
    args.dir.mkdir(parents=True, exist_ok=True)
    for stale in set(p.name for p in args.dir.glob("*.yaml")) - wanted.keys():
        (args.dir / stale).unlink()
    for name, text in wanted.items():
        (args.dir / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
