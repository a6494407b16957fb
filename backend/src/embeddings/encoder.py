"""A sentence encoder: tokenizer + BERT + pooling (+ normalization), loaded from a snapshot.

The BERT runs on ONNX Runtime when the model has an ONNX file in the snapshot (`onnx_file`,
src/embeddings/onnx_bert.py), else on the NumPy BERT from model.safetensors
(src/embeddings/bert.py); everything around it is the same for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple, Protocol

import numpy as np
from tokenizers import Encoding, Tokenizer

from src.embeddings.bert import load_bert
from src.embeddings.config import Pipeline, max_length, read_bert_config, read_pipeline
from src.embeddings.errors import EncodeError, EncoderLoadError
from src.embeddings.functional import F32
from src.embeddings.onnx_bert import load_onnx
from src.embeddings.pooling import l2_normalize, pool
from src.embeddings.tokenizer import TokenBatch, load_tokenizer, pad, tokenize

DEFAULT_BATCH_SIZE = 32
Runtime = Literal["onnxruntime", "numpy"]


class Encoded(NamedTuple):
    vectors: F32  # [len(texts), dimension], float32, in the order of the texts
    token_counts: list[int]  # tokens the model saw per text: special tokens in, after truncation


class Transformer(Protocol):
    """The BERT forward pass: the NumPy Bert or an OnnxTransformer."""

    @property
    def runtime(self) -> Runtime:
        """What runs it: "numpy" or "onnxruntime" (GET /v1/models shows it)."""

    @property
    def hidden_size(self) -> int: ...

    def __call__(self, batch: TokenBatch) -> F32:
        """The last hidden states, [batch, sequence, hidden]."""


class Encoder:
    """Immutable once loaded; encode() may run in several threads at once."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        bert: Transformer,
        pipeline: Pipeline,
        max_length: int,
        weights_file: str = "model.safetensors",
    ):
        self._tokenizer = tokenizer
        self._bert = bert
        self._pipeline = pipeline
        self.max_length = max_length
        self.dimension = bert.hidden_size * len(pipeline.pooling_modes)
        self.runtime = bert.runtime
        self.weights_file = weights_file  # the file of the snapshot the transformer runs from

    def encode(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> Encoded:
        """Embed the texts, batch_size at a time (inputs of similar length batched together)."""
        encodings = self.tokenize(texts)
        counts = [len(encoding.ids) for encoding in encodings]
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        # Longest first, as sentence-transformers does: each batch carries little padding.
        order = longest_first(encodings)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            vectors[rows] = self.forward([encodings[i] for i in rows])
        return Encoded(vectors, counts)

    def tokenize(self, texts: Sequence[str]) -> list[Encoding]:
        """The model's tokens of each text (lower-cased first if the model wants it)."""
        if self._pipeline.do_lower_case:
            texts = [text.lower() for text in texts]
        return tokenize(self._tokenizer, texts)

    def forward(self, encodings: Sequence[Encoding]) -> F32:
        """One forward pass over the encodings padded together: [len(encodings), dimension].

        Raises EncodeError for a NaN or infinite value (weights gone bad): never served."""
        batch = pad(encodings)
        pooled = pool(self._bert(batch), batch.mask, self._pipeline.pooling_modes)
        vectors: F32 = l2_normalize(pooled) if self._pipeline.normalize else pooled
        if not np.isfinite(vectors).all():
            raise EncodeError(
                f"{self.weights_file} ({self.runtime}) gave NaN or infinite values for a batch "
                f"of {len(encodings)}"
            )
        return vectors


def longest_first(encodings: Sequence[Encoding]) -> list[int]:
    """Indices of the encodings, longest first (stable: equal lengths keep their order)."""
    return sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))


def load(snapshot_dir: Path, onnx_file: str | None = None, threads: int = 1) -> Encoder:
    """The encoder of a sentence-transformers snapshot. Raises EncoderLoadError.

    onnx_file: the ONNX file's path in the snapshot, run on ONNX Runtime with `threads`
    intra-op threads per pass; None: the NumPy BERT, from the Transformer module's
    model.safetensors.
    """
    if not snapshot_dir.is_dir():
        raise EncoderLoadError(f"snapshot folder {snapshot_dir} missing")
    pipeline = read_pipeline(snapshot_dir)
    bert_config = read_bert_config(pipeline.transformer_dir / "config.json")
    limit = max_length(pipeline, bert_config)
    tokenizer = load_tokenizer(pipeline.transformer_dir / "tokenizer.json", limit)
    if tokenizer.get_vocab_size() > bert_config.vocab_size:
        raise EncoderLoadError(
            f"tokenizer.json has {tokenizer.get_vocab_size()} tokens, more than config.json's "
            f"vocab_size {bert_config.vocab_size}"
        )
    if onnx_file is not None:
        onnx = load_onnx(snapshot_dir / onnx_file, onnx_file, bert_config.hidden_size, threads)
        return Encoder(tokenizer, onnx, pipeline, limit, onnx_file)
    weights = pipeline.transformer_dir / "model.safetensors"
    bert = load_bert(weights, bert_config)
    return Encoder(tokenizer, bert, pipeline, limit, _relative(weights, snapshot_dir))


def _relative(path: Path, snapshot_dir: Path) -> str:
    """The path in the repo (as GET /v1/models lists files)."""
    try:
        return path.relative_to(snapshot_dir).as_posix()
    except ValueError:
        return path.name
