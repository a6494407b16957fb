"""The encoder's parts: GELU, LayerNorm, pooling, and what a snapshot's configuration may hold."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from src.embeddings import Encoder, EncoderLoadError, load
from src.embeddings.config import max_length, read_bert_config, read_pipeline
from src.embeddings.functional import gelu, layer_norm
from src.embeddings.pooling import l2_normalize, pool

# Two inputs of 3 and 2 tokens (the second padded), hidden size 2.
HIDDEN = np.array(
    [[[1, 2], [3, 4], [5, 0]], [[-1, 1], [1, -3], [100, 100]]],
    dtype=np.float32,
)
MASK = np.array([[True, True, True], [True, True, False]])


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


# ---- GELU


def test_gelu_is_the_exact_erf_form() -> None:
    x = np.linspace(-10, 10, 200_001, dtype=np.float32)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.tolist()])
    error = float(np.abs(gelu(x.copy()) - exact).max())
    assert error < 1e-6, f"GELU is off by up to {error:.2e} from 0.5 x (1 + erf(x / sqrt 2))"


# ---- LayerNorm


def test_layer_norm_uses_the_given_epsilon() -> None:
    """Rows of variance 1e-8 to 1: an epsilon of 1e-5 in place of 1e-12 shows in the small ones."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 384)) * np.logspace(-4, 0, 6)[:, None]
    weight, bias = rng.standard_normal(384), rng.standard_normal(384)
    centered = x - x.mean(axis=-1, keepdims=True)
    expected = centered / np.sqrt(np.square(centered).mean(axis=-1, keepdims=True) + 1e-12)
    expected = expected * weight + bias
    f32 = np.float32
    ours = layer_norm(x.astype(f32), weight.astype(f32), bias.astype(f32), eps=1e-12)
    error = float(np.abs(ours - expected).max())
    assert error < 1e-5, f"LayerNorm(eps=1e-12) is off by {error:.2e} from the float64 formula"


def copy_with_config(model_dir: Path, target: Path, **changes: object) -> Path:
    """A snapshot sharing model_dir's files (symlinks) but with config.json changed."""
    target.mkdir()
    for entry in model_dir.iterdir():
        if entry.name != "config.json":
            (target / entry.name).symlink_to(entry)
    config = json.loads((model_dir / "config.json").read_text())
    write_json(target / "config.json", {**config, **changes})
    return target


def test_encoder_takes_layer_norm_eps_from_config_json(
    model_dir: Path, tmp_path: Path, minilm_encoder: Encoder
) -> None:
    """MiniLM's config.json says 1e-12; the same weights with 1e-5 must encode differently."""
    texts = ["Hello world", "a", "The quick brown fox jumps over the lazy dog."]
    changed = load(copy_with_config(model_dir, tmp_path / "eps", layer_norm_eps=1e-5))
    difference = np.abs(changed.encode(texts).vectors - minilm_encoder.encode(texts).vectors)
    assert difference.max() > 1e-5, (
        f"layer_norm_eps 1e-5 in config.json changed the vectors by only {difference.max():.1e}"
    )


# ---- pooling


def test_mean_pooling_ignores_padding() -> None:
    expected = [[3, 2], [0, -1]]
    assert pool(HIDDEN, MASK, ["mean"]).tolist() == expected


def test_max_pooling_ignores_padding() -> None:
    assert pool(HIDDEN, MASK, ["max"]).tolist() == [[5, 4], [1, 1]]


def test_cls_pooling_takes_the_first_token() -> None:
    assert pool(HIDDEN, MASK, ["cls"]).tolist() == [[1, 2], [-1, 1]]


def test_several_modes_are_concatenated_in_order() -> None:
    assert pool(HIDDEN, MASK, ["cls", "mean"]).tolist() == [[1, 2, 3, 2], [-1, 1, 0, -1]]


def test_l2_normalize_gives_unit_rows() -> None:
    vectors = np.array([[3, 4], [0, 0]], dtype=np.float32)
    normalized = l2_normalize(vectors)
    assert np.allclose(normalized, np.array([[0.6, 0.8], [0.0, 0.0]])), f"normalized: {normalized}"


# ---- configuration


def test_pipeline_of_minilm(model_dir: Path) -> None:
    pipeline = read_pipeline(model_dir)
    assert (pipeline.pooling_modes, pipeline.normalize, pipeline.max_seq_length) == (
        ("mean",),
        True,
        256,
    )


def test_without_modules_json_pooling_is_mean_without_normalization(tmp_path: Path) -> None:
    pipeline = read_pipeline(tmp_path)
    assert (pipeline.pooling_modes, pipeline.normalize) == (("mean",), False)


def test_unsupported_module_is_refused_by_name(tmp_path: Path) -> None:
    modules = [
        {"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
    ]
    write_json(tmp_path / "modules.json", modules)
    with pytest.raises(EncoderLoadError, match="Transformer, Pooling, Dense are not supported"):
        read_pipeline(tmp_path)


def test_unsupported_pooling_mode_is_refused_by_name(tmp_path: Path) -> None:
    write_json(tmp_path / "1_Pooling" / "config.json", {"pooling_mode": "lasttoken"})
    modules = [
        {"path": "", "type": "sentence_transformers.models.Transformer"},
        {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    write_json(tmp_path / "modules.json", modules)
    with pytest.raises(EncoderLoadError, match="mode lasttoken is not supported"):
        read_pipeline(tmp_path)


def test_non_bert_model_is_refused(model_dir: Path, tmp_path: Path) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    write_json(tmp_path / "config.json", {**config, "model_type": "roberta"})
    with pytest.raises(EncoderLoadError, match="model_type 'roberta' is not supported"):
        read_bert_config(tmp_path / "config.json")


def test_layer_norm_eps_of_minilm_is_config_jsons(model_dir: Path) -> None:
    eps = read_bert_config(model_dir / "config.json").layer_norm_eps
    assert eps == 1e-12, f"all-MiniLM-L6-v2's config.json says layer_norm_eps 1e-12, read {eps}"


def test_layer_norm_eps_defaults_to_transformers_1e_12(model_dir: Path, tmp_path: Path) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    del config["layer_norm_eps"]
    write_json(tmp_path / "config.json", config)
    eps = read_bert_config(tmp_path / "config.json").layer_norm_eps
    assert eps == 1e-12, f"without layer_norm_eps, transformers uses 1e-12, not {eps}"


@pytest.mark.parametrize("value", ["1e-12", True, 0, -1e-5, float("nan"), None])
def test_bad_layer_norm_eps_is_refused_by_name(
    model_dir: Path, tmp_path: Path, value: object
) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    write_json(tmp_path / "config.json", {**config, "layer_norm_eps": value})
    with pytest.raises(EncoderLoadError, match=r"^config\.json: layer_norm_eps must be a positive"):
        read_bert_config(tmp_path / "config.json")


@pytest.mark.parametrize("activation", ["gelu_new", "gelu_pytorch_tanh", "relu"])
def test_activation_other_than_exact_gelu_is_refused(
    model_dir: Path, tmp_path: Path, activation: str
) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    write_json(tmp_path / "config.json", {**config, "hidden_act": activation})
    with pytest.raises(EncoderLoadError, match=f"hidden_act '{activation}' is not supported"):
        read_bert_config(tmp_path / "config.json")


def test_max_length_is_capped_by_the_position_table(model_dir: Path, tmp_path: Path) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    write_json(tmp_path / "config.json", {**config, "max_position_embeddings": 128})
    write_json(tmp_path / "sentence_bert_config.json", {"max_seq_length": 256})
    bert = read_bert_config(tmp_path / "config.json")
    assert max_length(read_pipeline(tmp_path), bert) == 128


def test_snapshot_without_weights_names_the_missing_file(model_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(model_dir, tmp_path / "model", ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(EncoderLoadError, match=r"^model\.safetensors missing$"):
        load(tmp_path / "model")
