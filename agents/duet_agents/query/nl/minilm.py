"""A sentence-transformers BERT model (all-MiniLM-L6-v2) run with numpy instead of torch.

The model directory is what sentence-transformers saves: config.json (the BERT
hyper-parameters), model.safetensors, tokenizer.json, sentence_bert_config.json (the
sequence length), modules.json (Transformer -> Pooling -> Normalize) and the pooling
module's config.json. The forward pass is the one of Hugging Face's `BertModel` in
inference mode (no dropout), followed by mean pooling and L2 normalisation, so the vectors
match sentence-transformers' own (tests/unit/test_nl_minilm.py checks them against
vectors it computed).

    encoder = MiniLM.load(model_dir)
    vectors = encoder.encode(["table orders: id, customer_id, total"])  # (1, 384) float32
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict
from safetensors.numpy import load_file
from tokenizers import Tokenizer

Array = NDArray[np.float32]
# Texts per forward pass: sorted by length first, so a batch pads little.
BATCH_SIZE = 32
# What torch.nn.functional.normalize guards the division with.
_NORM_EPS = 1e-12


class BertConfig(BaseModel):
    """The hyper-parameters the forward pass reads from config.json; a model that needs
    anything else (another activation, relative positions) is refused at load."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    hidden_size: int
    num_attention_heads: int
    num_hidden_layers: int
    layer_norm_eps: float
    max_position_embeddings: int
    pad_token_id: int = 0
    hidden_act: Literal["gelu"]
    position_embedding_type: Literal["absolute"] = "absolute"


class PoolingConfig(BaseModel):
    """1_Pooling/config.json: only mean pooling over the tokens is implemented."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    pooling_mode_mean_tokens: Literal[True]
    pooling_mode_cls_token: Literal[False] = False
    pooling_mode_max_tokens: Literal[False] = False
    pooling_mode_mean_sqrt_len_tokens: Literal[False] = False


class MiniLM:
    """Texts to unit-length sentence vectors; implements the NL engine's Embedder."""

    def __init__(
        self,
        config: BertConfig,
        weights: dict[str, Array],
        tokenizer: Tokenizer,
        *,
        normalize: bool = True,
    ) -> None:
        self.config = config
        self.weights = weights
        self.tokenizer = tokenizer
        self.normalize = normalize
        self.dimension = config.hidden_size

    @classmethod
    def load(cls, model_dir: Path) -> Self:
        """The model saved in `model_dir` by sentence-transformers."""
        config = BertConfig.model_validate(_json(model_dir / "config.json"))
        modules = {
            m["type"].rsplit(".", 1)[-1]: m["path"] for m in _json(model_dir / "modules.json")
        }
        PoolingConfig.model_validate(_json(model_dir / modules["Pooling"] / "config.json"))
        max_length = min(
            int(_json(model_dir / "sentence_bert_config.json")["max_seq_length"]),
            config.max_position_embeddings,
        )
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # tokenizer.json pads every text to 128 tokens and cuts there; sentence-transformers
        # overrides both per call: cut at max_seq_length, pad to the longest in the batch.
        tokenizer.enable_truncation(max_length=max_length)
        pad_token = tokenizer.id_to_token(config.pad_token_id) or "[PAD]"
        tokenizer.enable_padding(pad_id=config.pad_token_id, pad_token=pad_token)
        weights = {
            name: tensor.astype(np.float32, copy=False)
            for name, tensor in load_file(str(model_dir / "model.safetensors")).items()
            if tensor.dtype.kind == "f"  # leaves out the buffer of position ids
        }
        return cls(config, weights, tokenizer, normalize="Normalize" in modules)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """The Embedder protocol: plain lists, for callers that keep numpy out."""
        return [[float(x) for x in row] for row in self.encode(texts)]

    def encode(self, texts: Sequence[str]) -> Array:
        """One row per text, in the order given."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        # Longest first, as sentence-transformers does, so each batch pads little.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), BATCH_SIZE):
            rows = order[start : start + BATCH_SIZE]
            # sentence-transformers strips the texts before tokenizing them.
            encodings = self.tokenizer.encode_batch([texts[i].strip() for i in rows])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            type_ids = np.array([e.type_ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
            out[rows] = self._pool(self._forward(ids, type_ids, mask), mask)
        return out

    def _forward(self, ids: NDArray[np.int64], type_ids: NDArray[np.int64], mask: Array) -> Array:
        """BertModel's last hidden state, (batch, tokens, hidden)."""
        w, eps = self.weights, self.config.layer_norm_eps
        hidden = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][: ids.shape[1]]
            + w["embeddings.token_type_embeddings.weight"][type_ids]
        )
        hidden = _layer_norm(hidden, w, "embeddings.LayerNorm", eps)
        # Padding is hidden from every query by a bias that no score can overcome, as
        # transformers does (the minimum float, not -inf, so no row is all -inf).
        bias = (1.0 - mask)[:, None, None, :] * np.finfo(np.float32).min
        for layer in range(self.config.num_hidden_layers):
            prefix = f"encoder.layer.{layer}"
            attended = self._attention(hidden, bias, f"{prefix}.attention.self")
            hidden = _layer_norm(
                _linear(attended, w, f"{prefix}.attention.output.dense") + hidden,
                w,
                f"{prefix}.attention.output.LayerNorm",
                eps,
            )
            inner = _gelu(_linear(hidden, w, f"{prefix}.intermediate.dense"))
            hidden = _layer_norm(
                _linear(inner, w, f"{prefix}.output.dense") + hidden,
                w,
                f"{prefix}.output.LayerNorm",
                eps,
            )
        return hidden

    def _attention(self, hidden: Array, bias: Array, prefix: str) -> Array:
        """Multi-head scaled dot-product self-attention, heads concatenated back."""
        batch, tokens, size = hidden.shape
        heads = self.config.num_attention_heads
        head_size = size // heads

        def split(name: str) -> Array:
            projected = _linear(hidden, self.weights, f"{prefix}.{name}")
            return projected.reshape(batch, tokens, heads, head_size).transpose(0, 2, 1, 3)

        query, key, value = split("query"), split("key"), split("value")
        scores = query @ key.transpose(0, 1, 3, 2) / np.float32(np.sqrt(head_size)) + bias
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs = scores / scores.sum(axis=-1, keepdims=True)
        context: Array = probs @ value
        return context.transpose(0, 2, 1, 3).reshape(batch, tokens, size)

    def _pool(self, hidden: Array, mask: Array) -> Array:
        """The mean of the real tokens' states, then unit length when modules.json says so."""
        real = mask[:, :, None]
        pooled: Array = (hidden * real).sum(axis=1) / np.maximum(real.sum(axis=1), 1e-9)
        if not self.normalize:
            return pooled
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: Array = pooled / np.maximum(norms, _NORM_EPS)
        return unit


def _linear(x: Array, weights: dict[str, Array], name: str) -> Array:
    # torch.nn.Linear keeps its weight as (out, in). Flattened to one matrix product: numpy
    # runs a 3-d product against a 2-d one as many small ones, several times slower.
    weight = weights[f"{name}.weight"]
    flat = x.reshape(-1, x.shape[-1]) @ weight.T + weights[f"{name}.bias"]
    return flat.reshape(*x.shape[:-1], weight.shape[0])


def _layer_norm(x: Array, weights: dict[str, Array], name: str, eps: float) -> Array:
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    normed = (x - mean) / np.sqrt(variance + np.float32(eps))
    scaled: Array = normed * weights[f"{name}.weight"] + weights[f"{name}.bias"]
    return scaled


def _gelu(x: Array) -> Array:
    """BERT's exact GELU, x * Phi(x), not the tanh approximation."""
    return x * np.float32(0.5) * (np.float32(1.0) + _erf(x / np.float32(np.sqrt(2.0))))


# Abramowitz and Stegun 7.1.26: |error| < 1.5e-7, float32's own resolution. numpy has no erf
# and scipy, which has, would be a large dependency for one function.
_P = np.float32(0.3275911)
_A = tuple(
    np.float32(a) for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
)


def _erf(x: Array) -> Array:
    a = np.abs(x)
    t = np.float32(1.0) / (np.float32(1.0) + _P * a)
    poly = t * (_A[0] + t * (_A[1] + t * (_A[2] + t * (_A[3] + t * _A[4]))))
    erf: Array = np.sign(x) * (np.float32(1.0) - poly * np.exp(-a * a))
    return erf


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
