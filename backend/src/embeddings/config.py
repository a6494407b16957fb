"""The snapshot's configuration files, read into typed values.

- modules.json: the sentence-transformers pipeline (Transformer, Pooling, optional Normalize);
- config.json: the BERT hyper-parameters;
- sentence_bert_config.json: max_seq_length and do_lower_case;
- 1_Pooling/config.json (the Pooling module's folder): the pooling modes.

A snapshot without modules.json is a plain Hugging Face model; sentence-transformers then
uses mean pooling without normalization, and so does this module.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.embeddings.errors import EncoderLoadError

SUPPORTED_POOLING = ("cls", "max", "mean", "mean_sqrt_len_tokens")
# sentence-transformers' legacy boolean keys, in the order it concatenates the modes.
LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
# Above this, tokenizer_config.json's model_max_length means "no limit" (transformers' 1e30).
UNSET_MODEL_MAX_LENGTH = 1_000_000
# transformers' BertConfig default, used when config.json has no layer_norm_eps.
DEFAULT_LAYER_NORM_EPS = 1e-12


@dataclass(frozen=True)
class BertConfig:
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads


@dataclass(frozen=True)
class Pipeline:
    """What runs around the transformer: where it is, how inputs are cut, how outputs pool."""

    transformer_dir: Path
    max_seq_length: int | None  # sentence_bert_config.json; None: the tokenizer's own limit
    do_lower_case: bool
    pooling_modes: tuple[str, ...]
    normalize: bool


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EncoderLoadError(f"{path.name} missing") from None
    except OSError as error:
        raise EncoderLoadError(f"{path.name} unreadable: {error.strerror}") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise EncoderLoadError(f"{path.name} is not valid JSON: {error}") from None


def read_json_object(path: Path) -> dict[str, Any]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise EncoderLoadError(f"{path.name} is not a JSON object")
    return data


def _int(data: dict[str, Any], key: str, source: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise EncoderLoadError(f"{source}: {key} must be a positive integer, got {value!r}")
    return value


def _layer_norm_eps(data: dict[str, Any], source: str) -> float:
    """config.json's layer_norm_eps (a positive, finite number), else transformers' default."""
    value = data.get("layer_norm_eps", DEFAULT_LAYER_NORM_EPS)
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise EncoderLoadError(f"{source}: layer_norm_eps must be a positive number, got {value!r}")
    return float(value)


def read_bert_config(path: Path) -> BertConfig:
    """config.json of a BERT encoder; anything this NumPy forward pass does not do is refused."""
    data = read_json_object(path)
    name = path.name
    # (key, transformers' default, the one value supported here)
    for key, default, supported in (
        ("model_type", None, "bert"),
        ("hidden_act", "gelu", "gelu"),
        ("position_embedding_type", "absolute", "absolute"),
    ):
        value = data.get(key, default)
        if value != supported:
            raise EncoderLoadError(f"{name}: {key} {value!r} is not supported (only {supported!r})")
    config = BertConfig(
        hidden_size=_int(data, "hidden_size", name),
        num_layers=_int(data, "num_hidden_layers", name),
        num_heads=_int(data, "num_attention_heads", name),
        intermediate_size=_int(data, "intermediate_size", name),
        vocab_size=_int(data, "vocab_size", name),
        max_position_embeddings=_int(data, "max_position_embeddings", name),
        type_vocab_size=_int(data, "type_vocab_size", name),
        layer_norm_eps=_layer_norm_eps(data, name),
    )
    if config.hidden_size % config.num_heads:
        raise EncoderLoadError(
            f"{name}: hidden_size {config.hidden_size} is not a multiple of "
            f"num_attention_heads {config.num_heads}"
        )
    return config


def read_pipeline(snapshot: Path) -> Pipeline:
    """The sentence-transformers modules of the snapshot (modules.json), checked and read."""
    if not (snapshot / "modules.json").exists():
        return Pipeline(snapshot, *_read_sentence_config(snapshot), ("mean",), normalize=False)
    modules = read_json(snapshot / "modules.json")
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise EncoderLoadError("modules.json is not a list of modules")
    kinds = [str(module.get("type", "")).rsplit(".", 1)[-1] for module in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise EncoderLoadError(
            f"modules.json: modules {', '.join(kinds)} are not supported "
            "(only Transformer, Pooling and an optional Normalize)"
        )
    transformer_dir = snapshot / str(modules[0].get("path", ""))
    pooling_file = snapshot / str(modules[1].get("path", "")) / "config.json"
    return Pipeline(
        transformer_dir,
        *_read_sentence_config(transformer_dir),
        pooling_modes=read_pooling_modes(pooling_file),
        normalize=len(kinds) == 3,
    )


def _read_sentence_config(transformer_dir: Path) -> tuple[int | None, bool]:
    path = transformer_dir / "sentence_bert_config.json"
    if not path.exists():
        return None, False
    data = read_json_object(path)
    max_seq_length = _int(data, "max_seq_length", path.name) if "max_seq_length" in data else None
    return max_seq_length, bool(data.get("do_lower_case", False))


def read_pooling_modes(path: Path) -> tuple[str, ...]:
    """The pooling modes, in the order sentence-transformers concatenates their vectors."""
    data = read_json_object(path)
    if "pooling_mode" in data:
        raw = data["pooling_mode"]
        modes = (raw,) if isinstance(raw, str) else tuple(str(mode) for mode in raw)
    else:
        modes = tuple(mode for key, mode in LEGACY_POOLING_KEYS.items() if data.get(key))
    modes = modes or ("mean",)
    unsupported = [mode for mode in modes if mode not in SUPPORTED_POOLING]
    if unsupported:
        raise EncoderLoadError(
            f"pooling config: mode {', '.join(unsupported)} is not supported "
            f"(only {', '.join(SUPPORTED_POOLING)})"
        )
    return modes


def max_length(pipeline: Pipeline, bert: BertConfig) -> int:
    """Tokens kept per input, special tokens included, as sentence-transformers truncates.

    max_seq_length from sentence_bert_config.json, else the tokenizer's model_max_length;
    capped by the position table (max_position_embeddings) either way.
    """
    limit = pipeline.max_seq_length
    if limit is None:
        tokenizer_config = pipeline.transformer_dir / "tokenizer_config.json"
        data = read_json_object(tokenizer_config) if tokenizer_config.exists() else {}
        value = data.get("model_max_length")
        if isinstance(value, int | float) and 0 < value < UNSET_MODEL_MAX_LENGTH:
            limit = int(value)
    return min(limit or bert.max_position_embeddings, bert.max_position_embeddings)
