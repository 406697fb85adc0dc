"""Pieces every Duet resource shares: the API group, object metadata, conditions."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Final

from pydantic import ConfigDict, Field

from duet_agents.schema import CamelModel, ObjectName

GROUP: Final = "duet.aidatalabs.ai"
VERSION: Final = "v1alpha1"
API_VERSION: Final = "duet.aidatalabs.ai/v1alpha1"


class ObjectMeta(CamelModel):
    """The parts of metadata the operator reads; the rest passes through untouched."""

    model_config = ConfigDict(extra="allow")

    name: ObjectName
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class ConditionStatus(enum.StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(CamelModel):
    """metav1.Condition: one aspect of the resource's state, with why and since when."""

    type: str = Field(max_length=316)
    status: ConditionStatus
    reason: str = Field(max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = Field(default="", max_length=32768)
    last_transition_time: datetime
    observed_generation: int | None = Field(default=None, ge=0)


class SecretKeyRef(CamelModel):
    """A key of a Secret in the resource's namespace."""

    name: ObjectName
    key: str = Field(min_length=1, max_length=253)


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One CEL validation rule; the API server answers a violation with `message`, at the field
    `field_path` names (relative to where the rule sits)."""
    return {"rule": rule, "message": message} | ({"fieldPath": field_path} if field_path else {})


def validated_by(*rules: dict[str, str]) -> ConfigDict:
    """A model config that puts CEL rules into the model's generated schema."""
    extra: dict[str, Any] = {"x-kubernetes-validations": list(rules)}
    return ConfigDict(json_schema_extra=extra)
