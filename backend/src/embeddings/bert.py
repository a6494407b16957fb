"""The BERT encoder's forward pass in NumPy, from model.safetensors (float32).

embeddings (word + position + token type) -> LayerNorm -> for each layer:
    self-attention (query/key/value, scaled dot product, padding masked out) -> dense
    -> LayerNorm(+ residual) -> intermediate dense -> GELU -> output dense
    -> LayerNorm(+ residual)

Linear weights are stored by torch as [out, in]; they are transposed once at load time, and
query/key/value fused into one [hidden, 3 * hidden] matrix. Everything but the attention
scores runs on the real tokens only, packed as [tokens, hidden]: padding costs no matrix
products (a batch of mixed lengths is mostly padding); the attention runs on the padded
[batch, heads, sequence, head_size] layout, with the padding masked out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import load_file

from src.embeddings.config import BertConfig
from src.embeddings.errors import EncoderLoadError
from src.embeddings.functional import F32, gelu, layer_norm, softmax
from src.embeddings.tokenizer import TokenBatch

# Added to the attention scores of padding positions: their softmax weight becomes 0.
MASKED = np.finfo(np.float32).min


@dataclass(frozen=True)
class Linear:
    weight: F32  # [in, out]
    bias: F32  # [out]

    def __call__(self, x: F32) -> F32:
        out: F32 = x @ self.weight
        out += self.bias
        return out


@dataclass(frozen=True)
class Norm:
    weight: F32
    bias: F32
    eps: float

    def __call__(self, x: F32) -> F32:
        return layer_norm(x, self.weight, self.bias, self.eps)


@dataclass(frozen=True)
class Layer:
    qkv: Linear  # query, key, value side by side
    attention_out: Linear
    attention_norm: Norm
    intermediate: Linear
    output: Linear
    output_norm: Norm


@dataclass(frozen=True)
class Bert:
    config: BertConfig
    word_embeddings: F32  # [vocab, hidden]
    position_embeddings: F32  # [max_position, hidden]
    token_type_embeddings: F32  # [type_vocab, hidden]
    embedding_norm: Norm
    layers: tuple[Layer, ...]
    runtime: ClassVar[Literal["numpy"]] = "numpy"

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    def __call__(self, batch: TokenBatch) -> F32:
        """The last hidden states, [batch, sequence, hidden], zero at padding positions."""
        n, length = batch.ids.shape
        positions = np.broadcast_to(np.arange(length), (n, length))[batch.mask]
        x = self.word_embeddings[batch.ids[batch.mask]]  # [tokens, hidden]
        x += self.position_embeddings[positions]
        x += self.token_type_embeddings[batch.type_ids[batch.mask]]
        hidden = self.embedding_norm(x)
        bias = np.where(batch.mask, np.float32(0), MASKED)[:, None, None, :]  # [n, 1, 1, seq]
        for layer in self.layers:
            hidden = self._layer(layer, hidden, batch.mask, bias)
        padded = np.zeros((n, length, self.config.hidden_size), dtype=np.float32)
        padded[batch.mask] = hidden
        return padded

    def _layer(self, layer: Layer, hidden: F32, mask: NDArray[np.bool_], bias: F32) -> F32:
        (n, length), heads, size = mask.shape, self.config.num_heads, self.config.head_size
        qkv = np.zeros((n, length, 3 * heads * size), dtype=np.float32)
        qkv[mask] = layer.qkv(hidden)
        # [n, seq, 3 * hidden] -> [3, n, heads, seq, head_size]
        query, key, value = qkv.reshape(n, length, 3, heads, size).transpose(2, 0, 3, 1, 4)
        scores = query @ key.transpose(0, 1, 3, 2)  # [n, heads, seq, seq]
        scores *= np.float32(1 / math.sqrt(size))
        scores += bias
        context = softmax(scores) @ value  # [n, heads, seq, head_size]
        packed = context.transpose(0, 2, 1, 3)[mask].reshape(-1, heads * size)  # [tokens, hidden]
        attended = layer.attention_out(packed)
        attended += hidden
        hidden = layer.attention_norm(attended)
        output = layer.output(gelu(layer.intermediate(hidden)))
        output += hidden
        return layer.output_norm(output)


def load_bert(path: Path, config: BertConfig) -> Bert:
    """The weights of model.safetensors, checked against config.json's shapes."""
    try:
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise EncoderLoadError(f"{path.name} missing") from None
    except Exception as error:  # safetensors raises SafetensorError (or OSError) on bad files
        raise EncoderLoadError(f"{path.name} cannot be read: {error}") from None
    # BertModel checkpoints name tensors "embeddings...", BertFor* ones "bert.embeddings...".
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in tensors else ""

    def tensor(name: str, *shape: int) -> F32:
        array = tensors.get(prefix + name)
        if array is None:
            raise EncoderLoadError(f"{path.name} has no tensor {prefix + name}")
        if array.shape != shape:
            raise EncoderLoadError(
                f"{path.name}: {prefix + name} has shape {array.shape}, config.json says {shape}"
            )
        return np.ascontiguousarray(array, dtype=np.float32)

    def linear(name: str, n_in: int, n_out: int) -> Linear:
        weight = tensor(f"{name}.weight", n_out, n_in)
        return Linear(np.ascontiguousarray(weight.T), tensor(f"{name}.bias", n_out))

    def norm(name: str) -> Norm:
        size = config.hidden_size
        weight, bias = tensor(f"{name}.weight", size), tensor(f"{name}.bias", size)
        return Norm(weight, bias, config.layer_norm_eps)

    hidden, inner = config.hidden_size, config.intermediate_size

    def layer(index: int) -> Layer:
        base = f"encoder.layer.{index}"
        parts = [
            linear(f"{base}.attention.self.{part}", hidden, hidden)
            for part in ("query", "key", "value")
        ]
        return Layer(
            qkv=Linear(
                np.ascontiguousarray(np.concatenate([p.weight for p in parts], axis=1)),
                np.concatenate([p.bias for p in parts]),
            ),
            attention_out=linear(f"{base}.attention.output.dense", hidden, hidden),
            attention_norm=norm(f"{base}.attention.output.LayerNorm"),
            intermediate=linear(f"{base}.intermediate.dense", hidden, inner),
            output=linear(f"{base}.output.dense", inner, hidden),
            output_norm=norm(f"{base}.output.LayerNorm"),
        )

    return Bert(
        config=config,
        word_embeddings=tensor("embeddings.word_embeddings.weight", config.vocab_size, hidden),
        position_embeddings=tensor(
            "embeddings.position_embeddings.weight", config.max_position_embeddings, hidden
        ),
        token_type_embeddings=tensor(
            "embeddings.token_type_embeddings.weight", config.type_vocab_size, hidden
        ),
        embedding_norm=norm("embeddings.LayerNorm"),
        layers=tuple(layer(i) for i in range(config.num_layers)),
    )
