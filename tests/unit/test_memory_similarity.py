"""Similarity: requirement figures on a log scale, descriptions by word hashes or, with the
optional model, by embeddings (a fake Embedder stands in for MiniLM here)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from duet_agents.memory.similarity import (
    RADIUS,
    Figures,
    Profile,
    description_similarity,
    description_words,
    distance,
    similarity,
)
from duet_agents.planner.models import Availability, Requirements


def figures(**changes: object) -> Figures:
    base: dict[str, object] = {
        "data_bytes": 2 * 2**40,
        "ingest_rows_per_second": 50_000,
        "retention_days": 90,
        "concurrent_queries": 10,
        "latency_seconds": 1.0,
        "availability": Availability.STANDARD,
    }
    return Figures.model_validate(base | changes)


def profile(text: str | None = None, **changes: object) -> Profile:
    return Profile(figures(**changes).coordinates(), description_words(text))


class ConceptEmbedder:
    """Texts to unit vectors over a few concepts, synonyms sharing one: what a sentence
    model does for these words, and nothing else."""

    CONCEPTS = (("clickstream", "clicks", "web"), ("dashboards", "charts", "reports"))

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        vectors = []
        for text in texts:
            words = text.lower().replace(",", " ").split()
            v = [float(sum(w in concept for w in words)) for concept in self.CONCEPTS]
            norm = math.sqrt(sum(x * x for x in v)) or 1.0
            vectors.append([x / norm for x in v])
        return vectors


def test_figures_of_requirements() -> None:
    got = Figures.of(Requirements.model_validate({"dataVolume": "2Ti", "queryLatencyP95": "500ms"}))
    assert got.data_bytes == 2 * 2**40
    assert got.latency_seconds == 0.5
    assert got.availability is Availability.STANDARD


def test_coordinates_are_in_the_unit_box_and_scale_with_ratios() -> None:
    small, large = figures().coordinates(), figures(data_bytes=2**60).coordinates()
    assert all(0 <= x <= 1 for x in (*small, *large))
    # 1Ti -> 2Ti is as far as 10Ti -> 20Ti: sizing scales with ratios.
    a = distance(figures(data_bytes=2**40).coordinates(), figures(data_bytes=2**41).coordinates())
    b = distance(
        figures(data_bytes=10 * 2**40).coordinates(), figures(data_bytes=20 * 2**40).coordinates()
    )
    assert a == pytest.approx(b)


def test_twice_every_figure_is_near_the_edge_and_another_availability_is_far() -> None:
    doubled = figures(
        data_bytes=4 * 2**40,
        ingest_rows_per_second=100_000,
        retention_days=180,
        concurrent_queries=20,
        latency_seconds=2.0,
    )
    apart = distance(figures().coordinates(), doubled.coordinates())
    assert 0.1 < apart < RADIUS
    high = figures(availability=Availability.HIGH)
    assert similarity(profile(), Profile(high.coordinates())) == 0.0
    assert similarity(profile(), profile()) == 1.0


def test_description_words_are_hashes_without_stop_words_or_plurals() -> None:
    words = description_words("The dashboards of our Clickstream")
    assert words == description_words("clickstream dashboard")
    assert not any("click" in w or "dash" in w for w in words)
    assert description_words(None) == description_words("") == frozenset()


def test_descriptions_reweight_only_close_requirements() -> None:
    same = profile("clickstream dashboards")
    assert description_similarity(same, profile("clickstream dashboards")) == 1.0
    assert description_similarity(same, profile("billing ledger")) == 0.0
    assert description_similarity(same, profile(None)) is None
    near = {"data_bytes": 3 * 2**40, "retention_days": 150}
    assert similarity(same, profile("clickstream dashboards", **near)) > similarity(
        same, profile("billing ledger", **near)
    )
    # Far requirements stay dissimilar whatever the description says.
    far = profile("clickstream dashboards", data_bytes=2**50)
    assert similarity(same, far) == 0.0


def test_embeddings_are_used_when_both_sides_have_one() -> None:
    embedder = ConceptEmbedder()
    a_text, b_text = "clickstream dashboards", "web charts"
    [a_vec, b_vec] = embedder.embed([a_text, b_text])
    a = Profile(figures().coordinates(), description_words(a_text), tuple(a_vec))
    b = Profile(figures().coordinates(), description_words(b_text), tuple(b_vec))
    assert description_similarity(a, b) == pytest.approx(1.0)
    lexical = Profile(b.coordinates, b.words)  # recorded without the model
    assert description_similarity(a, lexical) == 0.0
