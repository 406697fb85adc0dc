"""The healer's brain: observations -> symptoms -> diagnosis -> decision. Pure; no I/O, no clock.

    observation = Observation(platform=..., pods=[pod_observation(p) for p in pods], ...)
    symptoms = detect(observation, now, thresholds)
    diagnoses = diagnose(observation, symptoms, now=now, history=history)
    decisions = decide(diagnoses, autonomy=autonomy, history=history, now=now)
    # later, for an applied one:
    PLAYBOOK[action].verify(later_observation, parameters, applied_at=..., now=...)

The operator does the I/O around it: it builds the observation, records each decision that is
not `suppressed` as a Remediation, applies the `apply` ones and the approved ones that
`approved_gate` lets through, and verifies them. With a model configured,
`healer.graph.diagnose_with_model` replaces `diagnose` (imported on its own: it loads
LangGraph). See docs/healer.md.
"""

from duet_agents.healer.actions import (
    Action,
    ActionType,
    Limits,
    NotApplicableError,
    Plan,
    Verification,
    VerificationState,
)
from duet_agents.healer.diagnosis import Diagnosis, applicable_plans, diagnose, diagnose_symptom
from duet_agents.healer.history import AutonomyMode, DecisionPhase, PastDecision
from duet_agents.healer.observations import (
    ClaimObservation,
    ClickHouseReplica,
    Component,
    ContainerObservation,
    ContainerTemplate,
    DriftObservation,
    EventObservation,
    LogExcerpt,
    Observation,
    PodObservation,
    PostgresLag,
    PostgresRole,
    ProbesReachable,
    StatefulSetObservation,
    VolumeUsage,
)
from duet_agents.healer.playbook import PLAYBOOK
from duet_agents.healer.policy import Autonomy, Decision, Gate, Outcome, approved_gate, decide
from duet_agents.healer.symptoms import Cause, Symptom, SymptomType, Thresholds, detect

__all__ = [
    "PLAYBOOK",
    "Action",
    "ActionType",
    "Autonomy",
    "AutonomyMode",
    "Cause",
    "ClaimObservation",
    "ClickHouseReplica",
    "Component",
    "ContainerObservation",
    "ContainerTemplate",
    "Decision",
    "DecisionPhase",
    "Diagnosis",
    "DriftObservation",
    "EventObservation",
    "Gate",
    "Limits",
    "LogExcerpt",
    "NotApplicableError",
    "Observation",
    "Outcome",
    "PastDecision",
    "Plan",
    "PodObservation",
    "PostgresLag",
    "PostgresRole",
    "ProbesReachable",
    "StatefulSetObservation",
    "Symptom",
    "SymptomType",
    "Thresholds",
    "Verification",
    "VerificationState",
    "VolumeUsage",
    "applicable_plans",
    "approved_gate",
    "decide",
    "detect",
    "diagnose",
    "diagnose_symptom",
]
