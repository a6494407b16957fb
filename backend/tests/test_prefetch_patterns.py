"""Only what is needed: the allow/ignore patterns of the prefetch, against the fake Hub."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from src.model_cache.manifest import snapshot_dir
from src.prefetch_cli import patterns_from_env
from tests.support.fake_hub import FakeHub, running_fake_hub
from tests.support.model_data import model_files
from tests.support.runners import PREFETCH_CODE, base_env, run_python

EXTRAS_REPO = "nica/minilm-with-extras"
NO_SAFETENSORS_REPO = "nica/minilm-pytorch-only"
# Other weight formats the default patterns skip; onnx/model_O4.onnx is one of the real repo's
# optimised variants (its onnx/model.onnx, the default HF_ONNX_FILES, would be fetched).
EXTRA_FILES = ("pytorch_model.bin", "onnx/model_O4.onnx", "onnx/config.json", "tf_model.h5")


@dataclass(frozen=True)
class Run:
    hub: FakeHub
    hf_home: Path
    result: subprocess.CompletedProcess[str]
    requests: list[dict[str, Any]]

    def manifest_files(self, repo_id: str) -> dict[str, int]:
        manifest = json.loads((self.hf_home / "prefetch-manifest.json").read_text())
        return {f["path"]: f["size"] for f in manifest["models"][repo_id]["files"]}


def _link_model(model_dir: Path, target: Path, skip: tuple[str, ...] = ()) -> Path:
    """target/ with a symlink to each model file (the hub follows them)."""
    for relative in model_files(model_dir):
        if relative in skip:
            continue
        link = target / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(model_dir / relative)
    return target


def _add_dummies(target: Path, names: tuple[str, ...]) -> None:
    for name in names:
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not needed " * 100)


def prefetch(hub: FakeHub, hf_home: Path, repos: str, **extra: str) -> Run:
    mark = hub.log_mark()
    env = base_env(
        HF_ENDPOINT=hub.url,
        HF_HOME=str(hf_home),
        HF_TOKEN_FILE=str(hf_home / "no-token"),
        HF_MODEL_REPOS=repos,
        HF_HUB_OFFLINE="1",
        **extra,
    )
    result = run_python(["-c", PREFETCH_CODE], env)
    return Run(hub, hf_home, result, hub.requests_since(mark))


@pytest.fixture(scope="module")
def extras_hub(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    """The model with other weight formats beside it, and the model with pytorch weights only."""
    work = tmp_path_factory.mktemp("extras-hub")
    extras = _link_model(model_dir, work / "extras")
    _add_dummies(extras, EXTRA_FILES)
    pytorch_only = _link_model(model_dir, work / "pytorch-only", skip=("model.safetensors",))
    _add_dummies(pytorch_only, ("pytorch_model.bin",))
    repos = [f"{EXTRAS_REPO}={extras}", f"{NO_SAFETENSORS_REPO}={pytorch_only}"]
    with running_fake_hub(model_dir, work, extra_repos=repos) as hub:
        yield hub


@pytest.fixture(scope="module")
def extras_run(extras_hub: FakeHub, tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = prefetch(extras_hub, tmp_path_factory.mktemp("hf-home-extras"), EXTRAS_REPO)
    assert run.result.returncode == 0, f"the prefetch should succeed: {run.result.stderr}"
    return run


# ---- defaults


def _resolved_paths(requests: list[dict[str, Any]]) -> set[str]:
    """The file paths asked for (`/{repo}/resolve/{rev}/{path}`), any method."""
    tails = [str(r["path"]).split("/resolve/", 1) for r in requests]
    return {tail[1].split("/", 1)[1] for tail in tails if len(tail) == 2}


def _commits(run: Run) -> set[str]:
    manifest = json.loads((run.hf_home / "prefetch-manifest.json").read_text())
    return {entry["commit"] for entry in manifest["models"].values()}


def test_other_weight_formats_are_never_requested(extras_run: Run) -> None:
    requested = _resolved_paths(extras_run.requests)
    assert "model.safetensors" in requested, f"the weights should be fetched, got {requested}"
    unwanted = requested & set(EXTRA_FILES)
    assert unwanted == set(), f"no request for other weight formats, got {unwanted}"


def test_manifest_lists_exactly_the_model_files(extras_run: Run, model_dir: Path) -> None:
    assert extras_run.manifest_files(EXTRAS_REPO) == model_files(model_dir), (
        "the manifest should list the model's files and none of the other weight formats"
    )


def test_snapshot_holds_exactly_the_model_files(extras_run: Run, model_dir: Path) -> None:
    [commit] = _commits(extras_run)
    snapshot = snapshot_dir(extras_run.hf_home, EXTRAS_REPO, commit)
    assert model_files(snapshot) == model_files(model_dir), "only the model's files on disk"


def test_repo_without_safetensors_falls_back_with_one_warning(
    extras_hub: FakeHub, tmp_path: Path
) -> None:
    run = prefetch(extras_hub, tmp_path, NO_SAFETENSORS_REPO)
    assert run.result.returncode == 0, f"the prefetch should succeed: {run.result.stderr}"
    assert run.result.stderr.splitlines() == [
        f"warning: {NO_SAFETENSORS_REPO}@main has no *.safetensors file; "
        "fetching its other weight formats"
    ]


def test_repo_without_safetensors_gets_its_pytorch_weights(
    extras_hub: FakeHub, tmp_path: Path
) -> None:
    run = prefetch(extras_hub, tmp_path, NO_SAFETENSORS_REPO)
    assert "pytorch_model.bin" in run.manifest_files(NO_SAFETENSORS_REPO), (
        "without safetensors, pytorch_model.bin should be fetched and recorded"
    )


# ---- configured by the environment


def test_allow_patterns_from_env_limit_the_download(extras_hub: FakeHub, tmp_path: Path) -> None:
    run = prefetch(extras_hub, tmp_path, EXTRAS_REPO, HF_ALLOW_PATTERNS=" config.json, *.txt ")
    assert run.result.returncode == 0, f"the prefetch should succeed: {run.result.stderr}"
    assert sorted(run.manifest_files(EXTRAS_REPO)) == ["config.json", "vocab.txt"]


def test_ignore_patterns_from_env_replace_the_defaults(extras_hub: FakeHub, tmp_path: Path) -> None:
    run = prefetch(
        extras_hub, tmp_path, EXTRAS_REPO, HF_IGNORE_PATTERNS="*.safetensors,onnx/*,README.md"
    )
    assert run.result.returncode == 0, f"the prefetch should succeed: {run.result.stderr}"
    files = set(run.manifest_files(EXTRAS_REPO))
    assert files & {"model.safetensors", "onnx/config.json", "README.md"} == set()
    assert "tokenizer.json" in files, "files not ignored should still be fetched"


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (
            ["model.safetensors", "pytorch_model.bin", "onnx/model.onnx", "onnx/config.json"],
            {"model.safetensors"},
        ),
        (
            ["model.safetensors", "tf_model.h5", "flax_model.msgpack", "rust_model.ot"],
            {"model.safetensors"},
        ),
        (
            ["config.json", "tokenizer.json", "sentencepiece.bpe.model", "1_Pooling/config.json"],
            {"config.json", "tokenizer.json", "sentencepiece.bpe.model", "1_Pooling/config.json"},
        ),
        (
            ["pytorch_model.bin", "config.json", "train.py"],
            {"pytorch_model.bin", "config.json"},
        ),
    ],
)
def test_default_patterns_select(paths: list[str], expected: set[str]) -> None:
    patterns, _ = patterns_from_env({}).for_listing(paths)
    assert patterns.select(paths) == expected


@pytest.mark.parametrize(
    ("paths", "onnx_file", "expected"),
    [
        (  # the ONNX file in place of the safetensors weights, no other variant
            ["model.safetensors", "onnx/model.onnx", "onnx/model_O4.onnx", "config.json"],
            "onnx/model.onnx",
            {"onnx/model.onnx", "config.json"},
        ),
        (  # a quantised variant named for the model
            ["model.safetensors", "onnx/model.onnx", "onnx/model_qint8_avx512.onnx", "vocab.txt"],
            "onnx/model_qint8_avx512.onnx",
            {"onnx/model_qint8_avx512.onnx", "vocab.txt"},
        ),
        (  # its external data file comes along
            ["model.safetensors", "onnx/model.onnx", "onnx/model.onnx_data", "modules.json"],
            "onnx/model.onnx",
            {"onnx/model.onnx", "onnx/model.onnx_data", "modules.json"},
        ),
        (  # a subfolder's safetensors too: the encoder reads the ONNX file only
            ["0_Transformer/model.safetensors", "onnx/model.onnx"],
            "onnx/model.onnx",
            {"onnx/model.onnx"},
        ),
    ],
)
def test_default_patterns_with_an_onnx_file_select(
    paths: list[str], onnx_file: str, expected: set[str]
) -> None:
    assert patterns_from_env({}).with_onnx(paths, onnx_file) == expected


@pytest.mark.parametrize(
    ("env", "paths", "onnx_file"),
    [
        ({}, ["model.safetensors", "onnx/model.onnx"], None),  # HF_ONNX_FILES says none
        ({}, ["model.safetensors", "onnx/model.onnx"], "onnx/model_quantized.onnx"),  # absent
        ({"HF_ALLOW_PATTERNS": "*"}, ["model.safetensors", "onnx/model.onnx"], "onnx/model.onnx"),
    ],
)
def test_no_onnx_selection_without_the_file_or_with_configured_patterns(
    env: dict[str, str], paths: list[str], onnx_file: str | None
) -> None:
    assert patterns_from_env(env).with_onnx(paths, onnx_file) is None, (
        "the other rules apply: the repo lacks the file, or the patterns apply as given"
    )


@pytest.mark.parametrize(
    ("env", "falls_back"),
    [({}, True), ({"HF_ALLOW_PATTERNS": "*"}, False), ({"HF_IGNORE_PATTERNS": "*.h5"}, False)],
)
def test_only_the_defaults_fall_back_without_safetensors(
    env: dict[str, str], falls_back: bool
) -> None:
    _, fell_back = patterns_from_env(env).for_listing(["pytorch_model.bin", "config.json"])
    assert fell_back is falls_back
