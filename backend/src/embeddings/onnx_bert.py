"""The transformer's forward pass on ONNX Runtime, from an ONNX file of the snapshot.

The file is the BERT-family encoder alone, as the Hub's sentence-transformers repositories
ship it (`onnx/model.onnx`, exported by Optimum): inputs `input_ids`, `attention_mask` and
optionally `token_type_ids` ([batch, sequence], int64 or int32), output `last_hidden_state`
([batch, sequence, hidden]). Tokenization, pooling and normalization stay the encoder's
(src/embeddings/encoder.py), the same as for the NumPy BERT.

One session per encoder, so one per uvicorn worker (each worker loads its own models).
Threads: each pass runs on `threads` intra-op threads (src.blas_threads.threads_per_pass(): 1
unless OPENBLAS_NUM_THREADS says more), inter-op 1, no spinning; the worker runs as many passes
at once as it has CPUs over that (the app's limiter), so its passes use the CPU limit divided
by the uvicorn workers, as the BLAS threads of the NumPy BERT do. Session.run releases the GIL:
two passes of one worker run in parallel.

Loading checks the graph before any request sees it: the inputs it needs are ones the encoder
feeds, its output has the model's hidden size (config.json), and a probe batch gives finite
values, the same for an input alone and padded next to a longer one (a graph that ignores the
attention mask would not). Any failure is one EncoderLoadError line naming the file. The
prefetch runs the same checks (`check_file`), so a corrupt file fails before a release is
rolled out.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from src.embeddings.errors import EncoderLoadError
from src.embeddings.functional import F32
from src.embeddings.tokenizer import TokenBatch

if TYPE_CHECKING:
    import onnxruntime

RUNTIME: Literal["onnxruntime"] = "onnxruntime"
OUTPUT = "last_hidden_state"
FED_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
REQUIRED_INPUTS = ("input_ids", "attention_mask")
INTEGER_TYPES: dict[str, type[np.integer[Any]]] = {
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}
# Padding must not move a real token's hidden state by more than this (float32 sums in
# another order move it by ~1e-6).
PADDING_TOLERANCE = 1e-3
MAX_REASON = 160


class OnnxTransformer:
    """`__call__(batch)`: the last hidden states [batch, sequence, hidden] of a padded batch."""

    runtime: Literal["onnxruntime"] = RUNTIME

    def __init__(
        self,
        session: onnxruntime.InferenceSession,
        weights_file: str,
        hidden_size: int,
        input_types: dict[str, type[np.integer[Any]]],
        output: str,
    ) -> None:
        self._session = session
        self.weights_file = weights_file  # the ONNX file's path in the repo
        self.hidden_size = hidden_size
        self._input_types = input_types  # input name -> its integer dtype
        self._output = output

    def __call__(self, batch: TokenBatch) -> F32:
        arrays = {
            "input_ids": batch.ids,
            "attention_mask": batch.mask,
            "token_type_ids": batch.type_ids,
        }
        feeds = {
            name: arrays[name].astype(dtype, copy=False)
            for name, dtype in self._input_types.items()
        }
        (hidden,) = self._session.run([self._output], feeds)
        result: F32 = np.asarray(hidden, dtype=np.float32)
        return result


def session_options(threads: int) -> onnxruntime.SessionOptions:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    # Waiting threads sleep rather than spin: on a busy host a spinning pool takes CPU from the
    # other passes, the proxy and PostgreSQL (2 threads with spinning: 290 sentences/s at
    # batch 1 against 390 without and 440 on one thread, on the busy 2-core build machine).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    # No arena: the memory of a large batch goes back after it (a 32 x 256 token pass left
    # the arena holding ~300 MB per session); small passes are as fast without it.
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 3  # errors only: its warnings are not one line each
    return options


def load_onnx(path: Path, weights_file: str, hidden_size: int, threads: int = 1) -> OnnxTransformer:
    """The checked session of `path` (`weights_file`: its path in the repo, for messages), its
    output of config.json's hidden size. Raises EncoderLoadError."""
    return _checked(_open(path, weights_file, threads), weights_file, hidden_size)


def check_file(path: Path, weights_file: str) -> None:
    """The checks of load_onnx against the hidden size the file itself declares: the prefetch's,
    before it records the snapshot. Raises EncoderLoadError."""
    _checked(_open(path, weights_file, threads=1), weights_file, hidden_size=None)


def _open(path: Path, weights_file: str, threads: int) -> onnxruntime.InferenceSession:
    import onnxruntime

    if not path.is_file():
        raise EncoderLoadError(f"{weights_file} missing")
    try:
        return onnxruntime.InferenceSession(
            str(path), session_options(threads), providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # ONNX Runtime raises its own types (Fail, InvalidProtobuf, ...)
        raise EncoderLoadError(
            f"{weights_file} cannot be loaded by ONNX Runtime: {_reason(error, path)}"
        ) from None


def _checked(
    session: onnxruntime.InferenceSession, weights_file: str, hidden_size: int | None
) -> OnnxTransformer:
    """The session as a transformer, once its inputs, output and a probe batch pass; with
    hidden_size None, the size the output declares (or gives) is taken."""
    input_types = _input_types(session, weights_file)
    output = _output(session, weights_file, hidden_size)
    declared = output.shape[2] if isinstance(output.shape[2], int) else None
    size = hidden_size or declared
    transformer = OnnxTransformer(session, weights_file, size or 0, input_types, output.name)
    _probe(transformer, size)
    return transformer


def _input_types(
    session: onnxruntime.InferenceSession, weights_file: str
) -> dict[str, type[np.integer[Any]]]:
    types: dict[str, type[np.integer[Any]]] = {}
    for node in session.get_inputs():
        if node.name not in FED_INPUTS:
            raise EncoderLoadError(
                f"{weights_file} needs input {node.name!r}; the encoder feeds only "
                f"{', '.join(FED_INPUTS)}"
            )
        dtype = INTEGER_TYPES.get(node.type)
        if dtype is None:
            raise EncoderLoadError(
                f"{weights_file}: input {node.name} is {node.type}, not int64 or int32"
            )
        types[node.name] = dtype
    missing = [name for name in REQUIRED_INPUTS if name not in types]
    if missing:
        raise EncoderLoadError(f"{weights_file} has no input {', '.join(missing)}")
    return types


def _output(
    session: onnxruntime.InferenceSession, weights_file: str, hidden_size: int | None
) -> onnxruntime.NodeArg:
    """`last_hidden_state`, else the one output; it must be [batch, sequence, hidden]."""
    outputs = {node.name: node for node in session.get_outputs()}
    node = outputs.get(OUTPUT) or (next(iter(outputs.values())) if len(outputs) == 1 else None)
    if node is None:
        raise EncoderLoadError(
            f"{weights_file} has no output {OUTPUT} (outputs: {', '.join(outputs) or 'none'})"
        )
    if len(node.shape) != 3:
        raise EncoderLoadError(
            f"{weights_file}: output {node.name} has {len(node.shape)} dimensions, not "
            "[batch, sequence, hidden]"
        )
    declared = node.shape[2]
    if hidden_size is not None and isinstance(declared, int) and declared != hidden_size:
        raise EncoderLoadError(
            f"{weights_file}: output {node.name} has hidden size {declared}, config.json says "
            f"{hidden_size}"
        )
    return node


def _probe(transformer: OnnxTransformer, hidden_size: int | None) -> None:
    """One padded batch and one input alone: the right shape, finite, padding ignored."""
    name = transformer.weights_file
    ids = np.array([[1, 2, 3, 4, 5], [1, 2, 3, 0, 0]], dtype=np.int64)
    mask = ids > 0
    padded = TokenBatch(ids, np.zeros_like(ids), mask)
    alone = TokenBatch(ids[1:, :3], np.zeros((1, 3), dtype=np.int64), mask[1:, :3])
    try:
        batch_out, alone_out = transformer(padded), transformer(alone)
    except Exception as error:
        raise EncoderLoadError(f"{name} fails on a probe batch: {_reason(error)}") from None
    size = hidden_size or (batch_out.shape[-1] if batch_out.ndim == 3 else 0)
    if batch_out.shape != (2, 5, size) or alone_out.shape != (1, 3, size) or size == 0:
        raise EncoderLoadError(
            f"{name}: a probe batch of 2 x 5 tokens gave shape {batch_out.shape}, "
            f"expected (2, 5, {size or 'hidden'})"
        )
    transformer.hidden_size = size
    if not (np.isfinite(batch_out).all() and np.isfinite(alone_out).all()):
        raise EncoderLoadError(f"{name} gives non-finite values (NaN or infinity) on a probe batch")
    moved = float(np.abs(batch_out[1, :3] - alone_out[0]).max())
    if not moved <= PADDING_TOLERANCE:
        raise EncoderLoadError(
            f"{name} does not mask padding: an input padded in a batch moved by {moved:.3g} "
            "against the same input alone"
        )


def _reason(error: BaseException, path: Path | None = None) -> str:
    """The error's first line, without ONNX Runtime's "[ONNXRuntimeError] : N : CODE :" prefix
    and with the snapshot's long path left out."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    if text.startswith("[ONNXRuntimeError]"):
        text = text.rsplit(" : ", 1)[-1].strip()
    if path is not None:
        text = text.replace(f"Load model from {path} failed:", "").replace(str(path), path.name)
    return text.strip()[:MAX_REASON]
