"""Which models the app needs: `HF_MODEL_REPOS` parsed into ModelSpec values, and which ONNX
file each one runs on (`HF_ONNX_FILES`, parsed into OnnxFiles)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

# The one rule for a repo id and a revision, shared with roles/backend_common's validation and
# the fake Hub (tests/data/model_spec_examples.json: the examples they all agree on).
# A repo id: two parts of letters, digits, '-', '_', '.', each starting and ending with a
# letter or digit, at most 96 characters, no '--' or '..'. A revision (branch, tag or
# commit): git ref characters, no '..', no '//', not ending in '/' or '.lock'.
RULES_FILE = Path(__file__).with_name("model_spec_rules.json")
_RULES = json.loads(RULES_FILE.read_text(encoding="utf-8"))
_REPO_ID_RE = re.compile(_RULES["repo_id"])
_REVISION_RE = re.compile(_RULES["revision"])
_ONNX_FILE_RE = re.compile(_RULES["onnx_file"])

# HF_ONNX_FILES: which ONNX file of a repo the encoder runs on ONNX Runtime (when the repo has
# it); the real sentence-transformers repositories ship theirs as onnx/model.onnx.
DEFAULT_ONNX_FILE = "onnx/model.onnx"
NO_ONNX = "none"  # the model runs on the NumPy BERT, from its safetensors weights
EVERY_MODEL = "*"  # an HF_ONNX_FILES entry for the models no other entry names


@dataclass(frozen=True)
class ModelSpec:
    """A Hub model repository at a revision (branch, tag or commit)."""

    repo_id: str
    revision: str

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.revision}"

    @property
    def cache_folder(self) -> str:
        """The repo's folder name in huggingface_hub's cache (`models--org--name`)."""
        return "models--" + self.repo_id.replace("/", "--")


def is_valid_revision(revision: str) -> bool:
    return _REVISION_RE.match(revision) is not None


def is_valid_repo_id(repo_id: str) -> bool:
    return _REPO_ID_RE.match(repo_id) is not None


def parse_model_repos(value: str, default_revision: str) -> list[ModelSpec]:
    """Parse `org/name[@revision], ...`; empty entries are ignored.

    Raises ValueError (one line, naming the entry) for a malformed entry or a repeated repo.
    """
    if not is_valid_revision(default_revision):
        raise ValueError(f"default revision {default_revision!r} is not a valid git revision")
    specs: list[ModelSpec] = []
    seen: set[str] = set()
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            continue
        repo_id, at, revision = entry.partition("@")
        repo_id = repo_id.strip()
        revision = revision.strip()
        if not is_valid_repo_id(repo_id):
            raise ValueError(f"entry {entry!r} is not of the form namespace/name[@revision]")
        if at and not revision:
            raise ValueError(f"entry {entry!r} has an empty revision after '@'")
        if at and not is_valid_revision(revision):
            raise ValueError(f"entry {entry!r} has an invalid revision {revision!r}")
        if repo_id in seen:
            raise ValueError(f"entry {entry!r} repeats repository {repo_id}")
        seen.add(repo_id)
        specs.append(ModelSpec(repo_id, revision if at else default_revision))
    return specs


@dataclass(frozen=True)
class OnnxFiles:
    """The ONNX file each model runs on (a path in its repo), or None: the NumPy BERT."""

    default: str | None = DEFAULT_ONNX_FILE
    by_repo: tuple[tuple[str, str | None], ...] = ()  # (repo id, file), repo ids unique

    def for_repo(self, repo_id: str) -> str | None:
        return dict(self.by_repo).get(repo_id, self.default)

    def __str__(self) -> str:
        entries = [*self.by_repo, (EVERY_MODEL, self.default)]
        return ", ".join(f"{repo}={file or NO_ONNX}" for repo, file in entries)


def is_valid_onnx_file(path: str) -> bool:
    return _ONNX_FILE_RE.match(path) is not None


def parse_onnx_files(value: str) -> OnnxFiles:
    """Parse `REPO=FILE, ...`: REPO an org/name or `*` (every model not named), FILE a path in
    the repo ending in .onnx, or `none` (the NumPy BERT). Unset entries keep the default,
    `*=onnx/model.onnx`; empty entries are ignored.

    Raises ValueError (one line, naming the entry) for a malformed entry or a repeated repo.
    """
    default: str | None = DEFAULT_ONNX_FILE
    by_repo: dict[str, str | None] = {}
    seen: set[str] = set()
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            continue
        repo, equals, path = (part.strip() for part in entry.partition("="))
        if not equals or not (repo == EVERY_MODEL or is_valid_repo_id(repo)):
            raise ValueError(f"entry {entry!r} is not of the form org/name=FILE or *=FILE")
        if path != NO_ONNX and not is_valid_onnx_file(path):
            raise ValueError(
                f"entry {entry!r}: {path!r} is not a path in the repo ending in .onnx "
                f"(e.g. {DEFAULT_ONNX_FILE}) nor {NO_ONNX!r}"
            )
        if repo in seen:
            raise ValueError(f"entry {entry!r} repeats {repo}")
        seen.add(repo)
        file = None if path == NO_ONNX else path
        if repo == EVERY_MODEL:
            default = file
        else:
            by_repo[repo] = file
    return OnnxFiles(default, tuple(by_repo.items()))
