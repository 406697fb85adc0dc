"""Field types and the base model shared by the planner's models and the custom resources.

The custom resources' OpenAPI schemas are generated from these pydantic models, so a field's
constraints live here once: the API server enforces them on `kubectl apply`, and pydantic
enforces the same ones on `duet plan -f` and on whatever a model proposes.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints, WithJsonSchema
from pydantic.alias_generators import to_camel

from duet_agents.units import DURATION_PATTERN, QUANTITY_PATTERN


class CamelModel(BaseModel):
    """camelCase on the wire (as Kubernetes objects are), snake_case in Python; no unknown keys."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=False,
    )

    def wire(self) -> dict[str, Any]:
        """The camelCase dict, without unset optional fields, as it goes into YAML or JSON."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _number_to_text(value: object) -> object:
    # YAML turns `cpu: 4` into an int; Kubernetes accepts it as a quantity, so do we.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


# A Kubernetes quantity (`2Ti`, `16Gi`, `500m`, `4`): an int-or-string on the wire.
Quantity = Annotated[
    str,
    BeforeValidator(_number_to_text),
    StringConstraints(pattern=QUANTITY_PATTERN),
    # The API server accepts int-or-string only in exactly this shape (as controller-gen
    # writes resource.Quantity); the pattern applies to the string form.
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
        }
    ),
]

# A Go-style duration (`500ms`, `1s`, `2m`).
Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN)]

# Names of Kubernetes objects we refer to (RFC 1123 subdomain).
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ObjectName = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
]
