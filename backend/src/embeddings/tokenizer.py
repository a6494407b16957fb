"""Tokenization as sentence-transformers does it, with the `tokenizers` library.

tokenizer.json may carry its own truncation and padding (all-MiniLM-L6-v2's: 128, padded to
128); sentence-transformers ignores both: it truncates (longest_first, on the right) at the
model's max_seq_length and pads each batch to its longest input. So does this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from tokenizers import Encoding, Tokenizer

from src.embeddings.errors import EncoderLoadError


@dataclass(frozen=True)
class TokenBatch:
    """Inputs padded on the right to the longest one: [batch, sequence] arrays."""

    ids: NDArray[np.int64]
    type_ids: NDArray[np.int64]
    mask: NDArray[np.bool_]  # True for real tokens, False for padding


def load_tokenizer(path: Path, max_length: int) -> Tokenizer:
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as error:  # tokenizers raises plain Exception for missing/bad files
        raise EncoderLoadError(f"{path.name} cannot be loaded: {error}") from None
    tokenizer.no_padding()  # padding happens per batch, in pad()
    tokenizer.enable_truncation(max_length=max_length, strategy="longest_first", direction="right")
    return tokenizer


def tokenize(tokenizer: Tokenizer, texts: Sequence[str]) -> list[Encoding]:
    """One encoding per text, special tokens added, truncated."""
    return tokenizer.encode_batch(list(texts), add_special_tokens=True)


def pad(encodings: Sequence[Encoding]) -> TokenBatch:
    longest = max((len(encoding.ids) for encoding in encodings), default=0)
    shape = (len(encodings), longest)
    ids = np.zeros(shape, dtype=np.int64)
    type_ids = np.zeros(shape, dtype=np.int64)
    mask = np.zeros(shape, dtype=np.bool_)
    for row, encoding in enumerate(encodings):
        length = len(encoding.ids)
        ids[row, :length] = encoding.ids
        type_ids[row, :length] = encoding.type_ids
        mask[row, :length] = True
    return TokenBatch(ids, type_ids, mask)
