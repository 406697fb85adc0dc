"""What `duet memory` and `GET /v1/memory/patterns` show, and what `export`/`import` carry:
patterns (a symptom, a component, a remedy) with their record and their evidence.

The export is a YAML document of the evidence itself (figures, word hashes, sizes, results),
so importing it into another store teaches the same lessons there, and importing it twice
adds nothing the second time (remediations are keyed by name).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import yaml
from pydantic import AwareDatetime, Field

from duet_agents.healer.actions import ActionType
from duet_agents.healer.history import DecisionPhase
from duet_agents.healer.observations import Component
from duet_agents.healer.symptoms import SymptomType
from duet_agents.memory.similarity import Figures
from duet_agents.schema import CamelModel, ObjectName, Quantity


class Pattern(CamelModel):
    """A remedy for a symptom, and how it went across every platform."""

    id: str = Field(description="`<symptom>/<component>/<action>`.")
    symptom: SymptomType
    component: Component | None
    action: ActionType
    platforms: int = Field(ge=0, description="Platforms it was tried on.")
    verified: int = Field(ge=0)
    failed: int = Field(ge=0)
    pending: int = Field(ge=0, description="Recorded but not settled: open, rejected, expired.")
    factor: Decimal | None = Field(
        default=None, description="Median growth of the verified remedies, when they grow a size."
    )
    last_seen: AwareDatetime


class EvidenceRecord(CamelModel):
    """One remediation of the pattern, with its platform's figures when it was decided."""

    remediation: ObjectName
    platform: str
    figures: Figures
    words: list[str] = Field(
        default_factory=list, description="Hashes of the description's words, for similarity."
    )
    before: Quantity | None = None
    after: Quantity | None = None
    phase: DecisionPhase
    decided_at: AwareDatetime


class PatternDetail(Pattern):
    evidence: list[EvidenceRecord]


class PatternList(CamelModel):
    patterns: list[Pattern]


class MemoryExport(CamelModel):
    api_version: Literal["duet.aidatalabs.ai/memory/v1"] = "duet.aidatalabs.ai/memory/v1"
    patterns: list[PatternDetail]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", by_alias=True), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> MemoryExport:
        """ValueError (pydantic's ValidationError is one) naming what is wrong."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"not YAML: {e}") from None
        return cls.model_validate(data)
