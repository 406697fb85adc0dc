"""The platform memory: every design, how it fared, every remediation; and what they teach.

    store = MemoryStore.open(url)                    # SQLite by default, or PostgreSQL
    store.record_design(platform, request, design, recorded_at=now)
    store.record_outcome(platform, Outcome(...))
    store.record_remediation(platform, RemediationRecord.of(name, symptom, plan, ...))

    # planning: lessons from similar platforms, applied within pins, policy and budget
    lessons = store.lessons_for(request)
    design = apply_lessons(capacity.plan(request, prices), request, lessons, prices)
    # a model planner gets `lessons_context(lessons)` in its planning data, and the
    # lesson-adjusted design as its baseline

    # healing: the rules' candidate actions, best record first, and why
    ranked = rank_actions(symptom.type, candidates, store.action_stats(symptom.type, component))
    diagnose(observation, symptoms, ..., rank=ranker({(type, component): stats, ...}))

Only figures and shapes are stored: requirement figures, sizes, enums, object names, word
hashes of descriptions; never data, secrets or query text. See docs/memory.md.
"""

from duet_agents.memory.adjust import apply_lessons
from duet_agents.memory.lessons import (
    Evidence,
    Lesson,
    MemoryPolicy,
    Resource,
    derive_lessons,
    lessons_context,
    parse_pattern_id,
    pattern_id,
)
from duet_agents.memory.patterns import (
    EvidenceRecord,
    MemoryExport,
    Pattern,
    PatternDetail,
    PatternList,
)
from duet_agents.memory.ranking import (
    ActionStats,
    RankedAction,
    StatsKey,
    merge_stats,
    rank_actions,
    ranker,
    ranking_reason,
    stats_from_history,
)
from duet_agents.memory.records import Outcome, RemediationRecord
from duet_agents.memory.settings import MemorySettings
from duet_agents.memory.similarity import Figures, Profile
from duet_agents.memory.store import MemoryStore, UnknownPlatformError, default_url

__all__ = [
    "ActionStats",
    "Evidence",
    "EvidenceRecord",
    "Figures",
    "Lesson",
    "MemoryExport",
    "MemoryPolicy",
    "MemorySettings",
    "MemoryStore",
    "Outcome",
    "Pattern",
    "PatternDetail",
    "PatternList",
    "Profile",
    "RankedAction",
    "RemediationRecord",
    "Resource",
    "StatsKey",
    "UnknownPlatformError",
    "apply_lessons",
    "default_url",
    "derive_lessons",
    "lessons_context",
    "merge_stats",
    "parse_pattern_id",
    "pattern_id",
    "rank_actions",
    "ranker",
    "ranking_reason",
    "stats_from_history",
]
