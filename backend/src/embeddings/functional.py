"""Element-wise pieces of the forward pass: erf, GELU, LayerNorm, softmax (float32, NumPy).

NumPy has no erf, and SciPy is not a dependency. `erf` is Abramowitz & Stegun 7.1.26
(|error| <= 1.5e-7 in exact arithmetic): evaluated in float32 its error against math.erf
on [-10, 10] is below 6e-7, and GELU's below 5e-7, i.e. a few float32 ulps. The tanh
approximation of GELU, which BERT does not use, is off by up to 1e-3.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]

_P = np.float32(0.3275911)
_A = tuple(
    np.float32(a) for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
)
_INV_SQRT2 = np.float32(1 / math.sqrt(2))


def erf(x: F32) -> F32:
    """The error function, element-wise."""
    a = np.abs(x)
    t = 1 / (1 + _P * a)
    poly = _A[4] * t
    for coefficient in reversed(_A[:4]):
        poly += coefficient
        poly *= t
    result: F32 = 1 - poly * np.exp(-a * a)
    return np.copysign(result, x)


def gelu(x: F32) -> F32:
    """GELU in BERT's exact form, x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2)))."""
    phi = erf(x * _INV_SQRT2)
    phi += 1
    phi *= 0.5
    phi *= x
    return phi


def layer_norm(x: F32, weight: F32, bias: F32, eps: float) -> F32:
    """LayerNorm over the last axis (biased variance, as torch)."""
    mean = x.mean(axis=-1, keepdims=True)
    centered: F32 = x - mean
    variance = np.mean(np.square(centered), axis=-1, keepdims=True)
    centered /= np.sqrt(variance + np.float32(eps))
    centered *= weight
    centered += bias
    return centered


def softmax(scores: F32) -> F32:
    """Softmax over the last axis, in place."""
    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)
    return scores
