"""From token vectors to one sentence vector, as sentence-transformers' Pooling and Normalize."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from src.embeddings.functional import F32

# Norms below this are not divided by (torch.nn.functional.normalize's eps).
NORM_EPS = np.float32(1e-12)


def pool(hidden: F32, mask: NDArray[np.bool_], modes: Sequence[str]) -> F32:
    """[batch, sequence, hidden] -> [batch, hidden * len(modes)]; padding never counts.

    Modes: "cls" (the first token), "max", "mean", "mean_sqrt_len_tokens" (the sum divided
    by the square root of the token count); several modes are concatenated in order.
    """
    weights = mask[:, :, None].astype(np.float32)
    counts = np.maximum(weights.sum(axis=1), np.float32(1e-9))  # [batch, 1]
    vectors = []
    for mode in modes:
        if mode == "cls":
            vectors.append(hidden[:, 0])
        elif mode == "max":
            vectors.append(np.where(mask[:, :, None], hidden, -np.inf).max(axis=1))
        elif mode == "mean":
            vectors.append((hidden * weights).sum(axis=1) / counts)
        elif mode == "mean_sqrt_len_tokens":
            vectors.append((hidden * weights).sum(axis=1) / np.sqrt(counts))
        else:
            raise ValueError(f"unsupported pooling mode {mode!r}")
    return np.concatenate(vectors, axis=1).astype(np.float32, copy=False)


def l2_normalize(vectors: F32) -> F32:
    """Each row divided by its Euclidean norm (rows of norm ~0 are left as they are)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    result: F32 = vectors / np.maximum(norms, NORM_EPS)
    return result
