"""How alike two platforms are, from what their owners asked for: never from their data.

A platform's requirements become a point in a unit box, one axis per figure on a log scale
(data volume, ingest rate, retention, concurrency, latency target) plus one for availability:
sizing scales with ratios, so 1Ti and 2Ti are as far apart as 10Ti and 20Ti. Twice every
figure is about 0.13 away; a different availability is 1 away, too far to ever count.

Descriptions are compared by their words, kept only as keyed hashes (enough to compare two
descriptions, not to print one), or, when the optional MiniLM model is installed, by the
cosine of their embeddings. The description only re-weights platforms whose requirements are
already close: it cannot make a small platform's lesson apply to a large one.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import Field

from duet_agents.planner.models import Availability, Requirements
from duet_agents.schema import CamelModel

# Requirement distance beyond which a platform is not similar at all.
RADIUS = 0.25
# How much of the similarity the description decides, when both platforms have one.
DESCRIPTION_WEIGHT = 0.25

# Each axis: (low, high) of the figure's log, mapped to 0..1 and clamped. The ranges cover
# what the Requirements model accepts for the counts and 1Gi..1Pi of data.
_DATA_LOG2 = (30.0, 50.0)
_INGEST_LOG10 = (0.0, 8.0)  # of 1 + rows/s
_RETENTION_LOG10 = (0.0, math.log10(36_500))
_QUERIES_LOG10 = (0.0, 4.0)
_LATENCY_LOG10 = (-3.0, 2.0)  # 1ms .. 100s

_WORD = re.compile(r"[a-z][a-z0-9]+")
# Words that say nothing about a workload.
_STOP_WORDS = frozenset(
    {"a", "all", "an", "and", "any", "are", "as", "at", "be", "by", "for", "from", "has"}
    | {"have", "in", "is", "it", "of", "on", "or", "our", "over", "per", "that", "the"}
    | {"this", "to", "under", "we", "with"}
)
# A fixed key: hashes must agree across stores for exported lessons to compare, so this is
# a shape, not a secret; it keeps words from being readable, not from being guessed.
_WORD_KEY = b"duet-memory-words"


class Figures(CamelModel):
    """The figures of a platform's requirements, as the memory keeps them."""

    data_bytes: int = Field(ge=0)
    ingest_rows_per_second: int = Field(ge=0)
    retention_days: int = Field(ge=1)
    concurrent_queries: int = Field(ge=1)
    latency_seconds: float = Field(gt=0)
    availability: Availability

    @classmethod
    def of(cls, requirements: Requirements) -> Figures:
        return cls(
            data_bytes=requirements.data_bytes,
            ingest_rows_per_second=requirements.ingest_rows_per_second,
            retention_days=requirements.retention_days,
            concurrent_queries=requirements.concurrent_queries,
            latency_seconds=float(requirements.latency_seconds),
            availability=requirements.availability,
        )

    def coordinates(self) -> tuple[float, ...]:
        """The point in the unit box: five log axes, then availability (0 or 1)."""
        return (
            _scale(math.log2(max(1, self.data_bytes)), _DATA_LOG2),
            _scale(math.log10(1 + self.ingest_rows_per_second), _INGEST_LOG10),
            _scale(math.log10(self.retention_days), _RETENTION_LOG10),
            _scale(math.log10(self.concurrent_queries), _QUERIES_LOG10),
            _scale(math.log10(self.latency_seconds), _LATENCY_LOG10),
            1.0 if self.availability is Availability.HIGH else 0.0,
        )


@dataclass(frozen=True)
class Profile:
    """What the lookup compares: the requirement point and the description's shape."""

    coordinates: tuple[float, ...]
    words: frozenset[str] = frozenset()
    embedding: tuple[float, ...] | None = None


def distance(a: Sequence[float], b: Sequence[float]) -> float:
    return math.dist(a, b)


def description_words(text: str | None) -> frozenset[str]:
    """The description's content words as keyed hashes; empty for no description."""
    if not text:
        return frozenset()
    words = (_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP_WORDS)
    return frozenset(_hash(w) for w in words)


def description_similarity(a: Profile, b: Profile) -> float | None:
    """Cosine of the embeddings when both have one, else the overlap of their words (Jaccard);
    None when either has no description."""
    if a.embedding is not None and b.embedding is not None:
        return max(0.0, min(1.0, _cosine(a.embedding, b.embedding)))
    if not a.words or not b.words:
        return None
    return len(a.words & b.words) / len(a.words | b.words)


def similarity(a: Profile, b: Profile) -> float:
    """0 (not similar) to 1 (the same requirements and description)."""
    near = 1.0 - distance(a.coordinates, b.coordinates) / RADIUS
    if near <= 0:
        return 0.0
    described = description_similarity(a, b)
    if described is None:
        return near
    return (1 - DESCRIPTION_WEIGHT) * near + DESCRIPTION_WEIGHT * described


def reach(min_similarity: float, *, described: bool) -> float:
    """The farthest requirement distance at which `similarity` can still reach
    `min_similarity`: with a description that matches perfectly, or without one."""
    if not described:
        return RADIUS * (1 - min_similarity)
    needed = max(0.0, (min_similarity - DESCRIPTION_WEIGHT) / (1 - DESCRIPTION_WEIGHT))
    return RADIUS * (1 - needed)


def _scale(value: float, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return min(1.0, max(0.0, (value - low) / (high - low)))


def _stem(word: str) -> str:
    # Plurals only: "dashboards" and "dashboard" are one word; anything cleverer mismatches.
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _hash(word: str) -> str:
    return hashlib.blake2b(word.encode(), digest_size=8, key=_WORD_KEY).hexdigest()


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    return dot / norms if norms else 0.0
