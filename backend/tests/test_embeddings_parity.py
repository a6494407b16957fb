"""Both encoders, the NumPy BERT and ONNX Runtime (each test runs for both), against
sentence-transformers (reference: tests/data/minilm_reference.json)."""

from __future__ import annotations

import numpy as np
import pytest

from src.embeddings import Encoded, Encoder
from tests.support.embeddings import MIN_COSINE, reference_items

ITEMS = reference_items()
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length
IDS = [f"{index:02d}-{item.text[:12].strip()}" for index, item in enumerate(ITEMS)]


@pytest.fixture(scope="module")
def encoded(any_encoder: Encoder) -> Encoded:
    """All reference sentences in one call, in batches of 8: short ones padded next to long ones."""
    return any_encoder.encode([item.text for item in ITEMS], batch_size=8)


@pytest.mark.parametrize("index", range(len(ITEMS)), ids=IDS)
def test_embedding_matches_sentence_transformers(encoded: Encoded, index: int) -> None:
    ours, reference = encoded.vectors[index], np.asarray(ITEMS[index].embedding)
    cosine = float(ours @ reference / (np.linalg.norm(ours) * np.linalg.norm(reference)))
    assert cosine >= MIN_COSINE, (
        f"cosine to sentence-transformers {cosine:.10f} < {MIN_COSINE} (1 - {1 - cosine:.1e})"
    )


@pytest.mark.parametrize("index", range(len(ITEMS)), ids=IDS)
def test_token_count_matches_sentence_transformers(encoded: Encoded, index: int) -> None:
    assert encoded.token_counts[index] == ITEMS[index].token_count, (
        f"sentence-transformers read {ITEMS[index].token_count} tokens (special ones included)"
    )


def test_reference_covers_inputs_past_the_max_length() -> None:
    truncated = [item for item in ITEMS if item.token_count == MAX_TOKENS]
    assert len(truncated) >= 1, "the reference should hold a sentence truncated at 256 tokens"


def test_long_input_is_truncated_at_max_seq_length(any_encoder: Encoder) -> None:
    encoded = any_encoder.encode(["word " * 1000])
    assert encoded.token_counts == [MAX_TOKENS], "1000 words + [CLS] + [SEP] keep 256 tokens"


def test_vectors_have_unit_norm(encoded: Encoded) -> None:
    norms = np.linalg.norm(encoded.vectors, axis=1)
    assert np.allclose(norms, 1, atol=1e-5), f"norms: {norms}"


def test_vector_does_not_depend_on_its_batch(any_encoder: Encoder) -> None:
    text = ITEMS[2].text
    alone = any_encoder.encode([text]).vectors[0]
    padded = any_encoder.encode([ITEMS[-1].text, text, ITEMS[0].text]).vectors[1]
    difference = float(np.abs(alone - padded).max())
    assert difference < 1e-5, f"padding changed the vector by up to {difference}"


def test_no_text_gives_an_empty_matrix(any_encoder: Encoder) -> None:
    encoded = any_encoder.encode([])
    assert (encoded.vectors.shape, encoded.token_counts) == ((0, 384), [])
