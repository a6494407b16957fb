"""Sentence embeddings from a cached BERT-family sentence-transformers model, on ONNX Runtime
where the model's snapshot has its ONNX file, in NumPy otherwise.

No torch, on purpose: torch is a multi-GB dependency (a CPU build alone is several hundred MB,
the default wheels pull in CUDA), and the backend image must stay small. ONNX Runtime's CPU
build (~37 MB in the image) runs the graph the Hub's repositories ship (`onnx/model.onnx`) with
fused kernels, about 1.3-2x the NumPy BERT's sentences/s on one thread (issue 25); many
BERT-family repositories ship safetensors only, and those run on the NumPy BERT: a small
encoder such as all-MiniLM-L6-v2 (6 layers, 384 dimensions, 22 M parameters) is a few matrix
products per layer, which NumPy's BLAS does about as fast as torch does.

The pipeline is the one sentence-transformers runs for such a model, read from the snapshot:

- `tokenizer`: the `tokenizers` library on tokenizer.json, truncated at max_seq_length;
- `bert`: the encoder forward pass from model.safetensors (float32), in NumPy;
- `onnx_bert`: the same pass on ONNX Runtime, from the snapshot's ONNX file;
- `pooling`: the pooling of 1_Pooling/config.json, then L2 normalization if modules.json
  has a Normalize module;
- `encoder`: the whole, `load(snapshot_dir) -> Encoder` and `Encoder.encode(texts)`;
- `registry`: the models of HF_MODEL_REPOS, loaded once at start-up;
- `batching`: concurrent requests embedded in shared forward passes.
"""

from src.embeddings.encoder import Encoded, Encoder, load
from src.embeddings.errors import EncodeError, EncoderLoadError

__all__ = ["EncodeError", "Encoded", "Encoder", "EncoderLoadError", "load"]
