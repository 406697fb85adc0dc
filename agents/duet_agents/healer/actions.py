"""What a playbook action is: a bounded change with a precondition, computed parameters, a
verification and a cooldown. The seven actions themselves are in `playbook`.

An action never trusts its caller for parameters: they are computed from the observation and
the symptom, within `Limits`, by the action itself, whether the rules or a model chose it.
Every parameter set names the object it changes as `target` (`pod/...`, `statefulset/...`),
which is what cooldowns are keyed on.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import ClassVar

from pydantic import Field

from duet_agents.healer.observations import Component, Observation
from duet_agents.healer.symptoms import Symptom, SymptomType
from duet_agents.planner.policy import PlannerPolicy
from duet_agents.schema import CamelModel, Quantity

_PLANNER = PlannerPolicy()


class ActionType(enum.StrEnum):
    """The same values as the DataPlatform's `spec.autonomy.actions`."""

    RESTART_POD = "restartPod"
    RAISE_MEMORY = "raiseMemory"
    EXPAND_STORAGE = "expandStorage"
    REPLACE_REPLICA = "replaceReplica"
    REAPPLY = "reapply"
    SCALE_OUT = "scaleOut"
    PROMOTE_POSTGRES_REPLICA = "promotePostgresReplica"


class ComponentBounds(CamelModel):
    max_memory: Quantity
    max_storage: Quantity


class Limits(CamelModel):
    """How far the healer may grow things on its own. The maxima default to the planner's
    policy bounds, so healing never gives a pod more than a planner could have proposed."""

    memory_step: Decimal = Field(
        default=Decimal("1.5"), gt=1, le=4, description="raiseMemory multiplies by this."
    )
    storage_step: Decimal = Field(
        default=Decimal("1.5"), gt=1, le=4, description="expandStorage grows at least by this."
    )
    storage_free_target: Decimal = Field(
        default=Decimal("0.3"),
        gt=0,
        lt=1,
        description="expandStorage grows far enough that at least this fraction is free.",
    )
    clickhouse: ComponentBounds = ComponentBounds(
        max_memory=_PLANNER.clickhouse.max_memory, max_storage=_PLANNER.clickhouse.max_storage
    )
    keeper: ComponentBounds = ComponentBounds(
        max_memory=_PLANNER.keeper.max_memory, max_storage=_PLANNER.keeper.max_storage
    )
    postgres: ComponentBounds = ComponentBounds(
        max_memory=_PLANNER.postgres.max_memory, max_storage=_PLANNER.postgres.max_storage
    )
    max_shards: int = Field(default=_PLANNER.max_shards, ge=1, le=256)
    promote_max_lag_bytes: int = Field(
        default=64 * 2**20,
        ge=0,
        description="A standby further behind than this (when its lag is known) is not"
        " promoted: the writes it misses would be lost.",
    )

    # What the user fixed in the platform's spec is theirs to change: the healer proposes no
    # raise of a pinned figure (and says why), rather than one the operator would not apply.
    pinned_memory: frozenset[Component] = frozenset()
    pinned_storage: frozenset[Component] = frozenset()
    pinned_shards: bool = False

    def bounds(self, component: Component) -> ComponentBounds:
        return {
            Component.CLICKHOUSE: self.clickhouse,
            Component.KEEPER: self.keeper,
            Component.POSTGRES: self.postgres,
        }[component]


class NotApplicableError(Exception):
    """The action's precondition does not hold; the message says why, for a person."""


class Plan(CamelModel):
    """An action with its computed parameters, ready to be proposed."""

    action: ActionType
    parameters: dict[str, str]

    @property
    def target(self) -> str:
        return self.parameters["target"]


class VerificationState(enum.StrEnum):
    VERIFIED = "verified"
    WAITING = "waiting"  # not yet: the change is still taking effect
    FAILED = "failed"


class Verification(CamelModel):
    state: VerificationState
    message: str

    @classmethod
    def verified(cls, message: str) -> Verification:
        return cls(state=VerificationState.VERIFIED, message=message)

    @classmethod
    def waiting(cls, message: str) -> Verification:
        return cls(state=VerificationState.WAITING, message=message)

    @classmethod
    def failed(cls, message: str) -> Verification:
        return cls(state=VerificationState.FAILED, message=message)


class Action(ABC):
    """One playbook entry. Subclasses set the class attributes and the two hooks."""

    type: ClassVar[ActionType]
    summary: ClassVar[str]
    addresses: ClassVar[frozenset[SymptomType]]
    cooldown: ClassVar[timedelta]
    verify_within: ClassVar[timedelta]
    deletes_data: ClassVar[bool] = False
    always_needs_approval: ClassVar[bool] = False

    def plan(
        self, observation: Observation, symptom: Symptom, limits: Limits | None = None
    ) -> Plan:
        """The action with its parameters, or NotApplicableError saying why not."""
        if symptom.type not in self.addresses:
            raise NotApplicableError(f"{self.type} does not address {symptom.type}")
        parameters = self._parameters(observation, symptom, limits or Limits())
        return Plan(action=self.type, parameters=parameters)

    def precondition(
        self, observation: Observation, symptom: Symptom, limits: Limits | None = None
    ) -> str | None:
        """None when the action applies; otherwise why it does not."""
        try:
            self.plan(observation, symptom, limits)
        except NotApplicableError as e:
            return str(e)
        return None

    def parameters(
        self, observation: Observation, symptom: Symptom, limits: Limits | None = None
    ) -> dict[str, str]:
        return self.plan(observation, symptom, limits).parameters

    def verify(
        self,
        later: Observation,
        parameters: Mapping[str, str],
        *,
        applied_at: datetime,
        now: datetime,
    ) -> Verification:
        """Whether the applied action worked, judged from an observation made after it.
        Still waiting after `verify_within` is a failure."""
        result = self._check(later, parameters, applied_at)
        if result.state is VerificationState.WAITING and now - applied_at > self.verify_within:
            return Verification.failed(
                f"not verified within {self.verify_within}: {result.message}"
            )
        return result

    @property
    def needs_approval(self) -> bool:
        """Whatever the autonomy policy says, a person must approve it."""
        return self.always_needs_approval or self.deletes_data

    @abstractmethod
    def _parameters(
        self, observation: Observation, symptom: Symptom, limits: Limits
    ) -> dict[str, str]: ...

    @abstractmethod
    def _check(
        self, later: Observation, parameters: Mapping[str, str], applied_at: datetime
    ) -> Verification: ...
