"""What the memory records: outcomes and remediations, as shapes and figures only.

Nothing here can hold a data value, a secret or query text: symptoms and actions are enums,
sizes are Kubernetes quantities (the pattern refuses anything else), and the only name is
the Remediation object's, which is the record's key.
"""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from duet_agents.healer.actions import ActionType, Plan
from duet_agents.healer.history import DecisionPhase
from duet_agents.healer.observations import Component
from duet_agents.healer.symptoms import Symptom, SymptomType
from duet_agents.schema import CamelModel, ObjectName, Quantity
from duet_agents.units import parse_quantity

# Actions whose `from`/`to` parameters are sizes or counts; the others' name pods.
FIGURE_ACTIONS = frozenset(
    {ActionType.RAISE_MEMORY, ActionType.EXPAND_STORAGE, ActionType.SCALE_OUT}
)
# Results that say whether an action works; Pending, Rejected and Expired ones do not.
SETTLED_PHASES = frozenset({DecisionPhase.VERIFIED, DecisionPhase.FAILED})


class Outcome(CamelModel):
    """One observation of how a platform fares: any field may be unknown."""

    observed_at: AwareDatetime
    time_to_ready_seconds: float | None = Field(
        default=None, ge=0, description="From the design's apply to Ready, when it got there."
    )
    symptom: SymptomType | None = None
    component: Component | None = None
    oom_kills: int = Field(default=0, ge=0, description="OOM kills seen since the last outcome.")
    disk_used_fraction: float | None = Field(
        default=None, ge=0, le=1, description="The fullest data volume's used fraction."
    )


class RemediationRecord(CamelModel):
    """One healer decision and how it ended. Recording one again under the same name updates
    it, so the operator records it when decided and again when verified or failed."""

    name: ObjectName = Field(description="The Remediation object's name: the record's key.")
    symptom: SymptomType
    component: Component | None = None
    action: ActionType
    before: Quantity | None = Field(default=None, description="The size or count it changed.")
    after: Quantity | None = Field(default=None, description="What it changed it to.")
    phase: DecisionPhase
    decided_at: AwareDatetime

    @classmethod
    def of(
        cls,
        name: str,
        symptom: Symptom,
        plan: Plan,
        *,
        phase: DecisionPhase,
        decided_at: AwareDatetime,
    ) -> RemediationRecord:
        """The record of a decision: the plan's sizes kept, its object names dropped."""
        return cls.of_parts(
            name, symptom.type, symptom.component, plan, phase=phase, decided_at=decided_at
        )

    @classmethod
    def of_parts(
        cls,
        name: str,
        symptom: SymptomType,
        component: Component | None,
        plan: Plan,
        *,
        phase: DecisionPhase,
        decided_at: AwareDatetime,
    ) -> RemediationRecord:
        """The same from a decision's parts, as a Remediation object keeps them (its symptom
        type, the component, the action and its parameters)."""
        return cls(
            name=name,
            symptom=symptom,
            component=component,
            action=plan.action,
            before=_figure(plan, "from"),
            after=_figure(plan, "to"),
            phase=phase,
            decided_at=decided_at,
        )

    @property
    def settled(self) -> bool:
        return self.phase in SETTLED_PHASES


def _figure(plan: Plan, key: str) -> str | None:
    if plan.action not in FIGURE_ACTIONS:
        return None
    value = plan.parameters.get(key)
    if value is None:
        return None
    try:
        parse_quantity(value)
    except ValueError:
        return None
    return value
