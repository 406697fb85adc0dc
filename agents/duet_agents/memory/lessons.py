"""Lessons: what similar platforms' verified remediations say about a new design. Pure.

A lesson is one pattern (`<symptom>/<component>/<action>`, e.g. `OOMKilled/clickhouse/
raiseMemory`) seen verified on platforms similar to the one being planned, with the factor
by which the remedy grew the resource on each: how far the first size before the remedy was
from the last size a remedy was verified at. Only remedies that change a figure the planner
chooses become lessons (memory and storage); every pattern counts for the healer's ranking.
"""

from __future__ import annotations

import enum
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import Field

from duet_agents.healer.actions import ActionType, Limits
from duet_agents.healer.history import DecisionPhase
from duet_agents.healer.observations import Component
from duet_agents.healer.symptoms import SymptomType
from duet_agents.memory.similarity import Profile, similarity
from duet_agents.schema import CamelModel, Quantity
from duet_agents.units import parse_quantity

ANY_COMPONENT = "any"


class Resource(enum.StrEnum):
    MEMORY = "memory"
    STORAGE = "storage"


# The remedies that teach the planner something, and what they grow.
DESIGN_LESSONS = {
    ActionType.RAISE_MEMORY: Resource.MEMORY,
    ActionType.EXPAND_STORAGE: Resource.STORAGE,
}

_SYMPTOM_WORDS = {
    SymptomType.OOM_KILLED: "that were OOM-killed",
    SymptomType.VOLUME_NEARLY_FULL: "whose disks were filling",
}
_ACTION_WORDS = {
    ActionType.RAISE_MEMORY: "raising memory",
    ActionType.EXPAND_STORAGE: "expanding storage",
}


class MemoryPolicy(CamelModel):
    """How much the memory may move a design, and what counts as similar."""

    min_similarity: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="A platform this similar or more teaches lessons (0.5: about 1.6x apart on"
        " every requirement figure, or 2x with a matching description).",
    )
    min_platforms: int = Field(
        default=1, ge=1, description="Similar platforms with a verified remedy a lesson needs."
    )
    max_factor: Decimal = Field(
        default=Decimal(2), ge=1, le=4, description="A lesson grows a figure at most this much."
    )
    max_evidence_shown: int = Field(
        default=3, ge=1, le=20, description="Platforms named per rationale line."
    )


def pattern_id(symptom: SymptomType, component: Component | None, action: ActionType) -> str:
    return f"{symptom}/{component or ANY_COMPONENT}/{action}"


def parse_pattern_id(text: str) -> tuple[SymptomType, Component | None, ActionType]:
    """The parts of `<symptom>/<component>/<action>`; ValueError naming what is wrong."""
    parts = text.split("/")
    if len(parts) != 3:
        raise ValueError(f"{text!r} is not a pattern: <symptom>/<component>/<action>")
    symptom, component, action = parts
    try:
        return (
            SymptomType(symptom),
            None if component == ANY_COMPONENT else Component(component),
            ActionType(action),
        )
    except ValueError as e:
        raise ValueError(f"{text!r} is not a pattern: {e}") from None


class Evidence(CamelModel):
    """One similar platform on which the remedy was verified."""

    platform: str
    similarity: float = Field(ge=0, le=1)
    before: Quantity | None = None
    after: Quantity | None = None
    verified: int = Field(ge=1)
    failed: int = Field(default=0, ge=0)

    def describe(self) -> str:
        change = f", {self.before} -> {self.after}" if self.before and self.after else ""
        return f"{self.platform} (similarity {self.similarity:.2f}{change})"


class Lesson(CamelModel):
    """A pattern verified on similar platforms, and how much it grew the resource."""

    pattern: str
    symptom: SymptomType
    component: Component
    action: ActionType
    resource: Resource
    factor: Decimal = Field(ge=1, description="Median growth the remedy needed, per platform.")
    failed_platforms: int = Field(
        default=0, ge=0, description="Similar platforms where it failed and never verified."
    )
    evidence: list[Evidence] = Field(min_length=1)

    def meaning(self) -> str:
        symptom = _SYMPTOM_WORDS.get(self.symptom, f"showing {self.symptom}")
        factor = f"{self.factor.normalize():f}"
        action = _ACTION_WORDS.get(self.action, str(self.action))
        return f"similar platforms {symptom} were fixed by {action} (x{factor})"

    def because(self, shown: int) -> str:
        """Why, for a rationale line: the pattern and the platforms it came from."""
        names = ", ".join(e.describe() for e in self.evidence[:shown])
        more = len(self.evidence) - shown
        names += f" and {more} more" if more > 0 else ""
        return f"lesson {self.pattern}: {self.meaning()}: {names}"


@dataclass(frozen=True)
class PastRemediation:
    """A settled remediation as the lookup reads it, with the profile of its platform's design
    at the time."""

    platform: str
    profile: Profile
    symptom: SymptomType
    component: Component | None
    action: ActionType
    before: str | None
    after: str | None
    phase: DecisionPhase
    decided_at: datetime


def derive_lessons(
    profile: Profile, past: Iterable[PastRemediation], policy: MemoryPolicy | None = None
) -> list[Lesson]:
    """The lessons `past` teaches a platform with `profile`, sorted by pattern."""
    policy = policy or MemoryPolicy()
    groups: dict[tuple[SymptomType, Component, ActionType], dict[str, list[PastRemediation]]]
    groups = defaultdict(lambda: defaultdict(list))
    closeness: dict[str, float] = {}
    for row in past:
        if row.action not in DESIGN_LESSONS or row.component is None:
            continue
        score = similarity(profile, row.profile)
        if score < policy.min_similarity:
            continue
        closeness[row.platform] = max(score, closeness.get(row.platform, 0.0))
        groups[(row.symptom, row.component, row.action)][row.platform].append(row)
    lessons = []
    for (symptom, component, action), by_platform in groups.items():
        evidence, failed = _evidence(by_platform, closeness)
        if len(evidence) < policy.min_platforms:
            continue
        lessons.append(
            Lesson(
                pattern=pattern_id(symptom, component, action),
                symptom=symptom,
                component=component,
                action=action,
                resource=DESIGN_LESSONS[action],
                factor=_median_factor(evidence),
                failed_platforms=failed,
                evidence=evidence,
            )
        )
    return sorted(lessons, key=lambda lesson: lesson.pattern)


def lessons_context(lessons: Iterable[Lesson]) -> list[dict[str, Any]]:
    """The lessons as a model planner's context: patterns and figures, no platform names
    (those are other users' business, and the model needs only how alike they were)."""
    return [
        {
            "pattern": lesson.pattern,
            "meaning": lesson.meaning(),
            "grow": f"{lesson.component}.{lesson.resource}",
            "factor": str(lesson.factor),
            "similarPlatforms": [
                {"similarity": round(e.similarity, 2), "before": e.before, "after": e.after}
                for e in lesson.evidence
            ],
            "failedOnSimilarPlatforms": lesson.failed_platforms,
        }
        for lesson in lessons
    ]


def _evidence(
    by_platform: dict[str, list[PastRemediation]], closeness: dict[str, float]
) -> tuple[list[Evidence], int]:
    evidence, failed_only = [], 0
    for platform, unordered in by_platform.items():
        rows = sorted(unordered, key=lambda r: r.decided_at)
        verified = [r for r in rows if r.phase is DecisionPhase.VERIFIED]
        if not verified:
            failed_only += 1
            continue
        evidence.append(
            Evidence(
                platform=platform,
                similarity=round(closeness[platform], 4),
                # From the size before the first try to the size the last verified one set.
                before=next((r.before for r in rows if r.before), None),
                after=verified[-1].after,
                verified=len(verified),
                failed=sum(r.phase is DecisionPhase.FAILED for r in rows),
            )
        )
    evidence.sort(key=lambda e: (-e.similarity, e.platform))
    return evidence, failed_only


def median_growth(changes: Iterable[tuple[str | None, str | None]]) -> Decimal | None:
    """The median of after / before over the (before, after) sizes that have both."""
    ratios = [
        parse_quantity(after) / parse_quantity(before)
        for before, after in changes
        if before and after and parse_quantity(before) > 0
    ]
    if not ratios:
        return None
    median: Decimal = statistics.median(ratios)
    return median.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _median_factor(evidence: list[Evidence]) -> Decimal:
    # A verified remedy without figures still says "more": as much as one healer step.
    factor = median_growth((e.before, e.after) for e in evidence) or Limits().memory_step
    return max(Decimal(1), factor).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
